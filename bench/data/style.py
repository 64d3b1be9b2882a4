"""The style set of a `stylize` suite, and its fixed (content, style) evaluation pairs.

The suite names a content set (`dataset:`) and a style set (`style:`, any data set spec, a `folder` of your
own images included). The style set is converted to the content's image size, channels and grey levels
(as a pretraining source is: bench.tasks.common.source_spec), so an output, its content image and its style
image have one shape and every metric compares like with like.

Evaluation pairs are fixed: drawn once from `derive_seed(0, "pairs")`, the same for every run, strategy and
seed of a suite, from the two test splits. Each content image is paired with `STYLES_PER_CONTENT` different
style images, so the diversity metric can ask whether one content with several styles gives several outputs.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from bench.adapter.batch import DataInfo
from bench.core.seeds import derive_seed
from bench.data.datasets import ImageData, load_dataset
from bench.suite.spec import DatasetSpec

STYLES_PER_CONTENT = 4  # each evaluation content image is stylised with this many style images
PAIR_SEED = 0  # one fixed pair set for every run (a seed of its own would change the yardstick per seed)


def style_spec(spec: DatasetSpec, info: DataInfo) -> DatasetSpec:
    """The style set converted to the content's image size, channels and grey levels."""
    return dataclasses.replace(spec, image_size=info.image_size, channels=info.channels, levels=info.levels)


def with_style(data: ImageData, spec: DatasetSpec | None, where: str = "style") -> ImageData:
    """`data` (the content set) carrying its converted style set, or `data` itself when the suite has none."""
    if spec is None:
        return data
    style = load_dataset(style_spec(spec, data.info), where=where)
    return dataclasses.replace(data, style=style)


@dataclasses.dataclass(frozen=True)
class Pairs:
    """The evaluation pairs: content[i] is stylised with style[i]; group[i] numbers its content image."""

    content: torch.Tensor  # uint8 N×C×H×W, from the content set's test split
    style: torch.Tensor  # uint8 N×C×H×W, from the style set's test split
    label: torch.Tensor  # int64 N, the content image's class (-1 where unknown)
    group: torch.Tensor  # int64 N: pairs with the same group share one content image


def eval_pairs(data: ImageData, n: int) -> Pairs:
    """`n` fixed pairs: n // STYLES_PER_CONTENT content images (test split, without repeats while it lasts),
    each with STYLES_PER_CONTENT distinct style images (style test split). Deterministic in the data alone."""
    if data.style is None:
        raise ValueError("eval_pairs needs a content set with its style set (bench.data.style.with_style)")
    k = STYLES_PER_CONTENT
    groups = max(1, n // k)
    gen = torch.Generator().manual_seed(derive_seed(PAIR_SEED, "pairs"))
    cx, sx = data.test_x.cpu(), data.style.test_x.cpu()
    order = torch.cat([torch.randperm(len(cx), generator=gen) for _ in range(-(-groups // len(cx)))])[:groups]
    ci = order.repeat_interleave(k)[:n]
    si = torch.cat([torch.randperm(len(sx), generator=gen)[:k] for _ in range(groups)])[:n]
    if len(ci) < n:  # n not a multiple of k: the last group is cut short
        ci = torch.cat([ci, order[-1:].repeat(n - len(ci))])
        si = torch.cat([si, torch.randint(0, len(sx), (n - len(si),), generator=gen)])
    group = torch.arange(groups).repeat_interleave(k)[:n]
    if len(group) < n:
        group = torch.cat([group, group[-1:].repeat(n - len(group))])
    return Pairs(cx[ci], sx[si], data.test_y.cpu()[ci], group)


TRIPLETS = 12  # pairs shown in samples.png: 3 content images × their STYLES_PER_CONTENT styles


def save_triplets(outputs: torch.Tensor, pairs: Pairs, folder: Path) -> None:
    """samples.png: one column per pair, rows content / style / output; real.png: the content and style rows."""
    from bench.data.images import save_grid

    n = min(TRIPLETS, len(outputs))
    c, s, o = pairs.content[:n], pairs.style[:n], outputs[:n].cpu()
    save_grid(torch.cat([c, s, o]), Path(folder) / "samples.png", nrow=n)
    save_grid(torch.cat([c, s]), Path(folder) / "real.png", nrow=n)
