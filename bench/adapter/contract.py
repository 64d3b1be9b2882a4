"""The adapter contract, checked on a tiny batch before any real work.

One `train_step`, one `sample` and one `log_likelihood`, plus a forward pass through every part, on a
throwaway adapter built the way the run builds it. The global random state is saved and restored around the
check, so a run's numbers are the same with or without it. Each violation is one line naming the method,
what came back and what is expected; `bench validate` prints them and exits 2, and a run fails with them
as its error before pretraining starts.

What is checked (the README's "Add a baseline" states the same contract):
- `family` declared on the class, one of FAMILIES (a forgotten one would run as `other`, silently);
- `parts()`: name → Part; an `encoder` maps x (N×C×H×W float in [-1, 1]) to N×features; a `decoder` maps
  z (N×latent_dim) to an N×C'×H×W image; a `sequence` part maps N×T int64 tokens (the start token, id
  vocab-1, then the pixels' level indices shifted right; T = C·H·W) to N×T×vocab logits, with vocab - 1
  between 2 and the data's levels;
- `train_step(batch, 0)`: a non-empty dict of name → 0-dim float tensor (a Python float forces a host sync
  on every step, which the harness avoids);
- `sample(n, generator)`: uint8 n×C×H×W with every value on the data's `levels` grid; for a conditional
  (`stylize`) adapter, `stylize(content, style)` on the check batch and its style batch instead, the same output rule;
- `log_likelihood(batch)`: None, or finite float N values ≤ 0 (nats), on a batch of data and on a batch of the
  model's own samples, where a continuous density (a flow or diffusion model that forgot the bins' volume,
  D·log(levels)) is most likely to show a value above 0: caught here, not at the first evaluation;
- a `denoiser` part maps (x_t N×C×H×W, t float N in [0, 1]) to N×C×H×W, the data's shape.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from bench.adapter.base import CONDITIONAL_FAMILIES, FAMILIES, Adapter, Part
from bench.adapter.batch import Batch, BatchSource
from bench.adapter.tokens import PixelTokens, from_levels, to_levels
from bench.core.errors import BenchError
from bench.core.seeds import derive_seed
from bench.data.datasets import ImageData
from bench.metrics.info import METRIC_INFO

CHECK_BATCH = 4  # tiny on purpose: the check must cost far less than one real step of a large model
MAX_SHOWN = 80  # an echoed value is cut to this many characters
HISTORY_COLUMNS = ("step", "train_seconds")  # written by the harness into every history.csv row


class ContractError(BenchError):
    """An adapter breaks the contract: the message holds one line per violation, joined by '; '."""


def _show(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"a {str(value.dtype).removeprefix('torch.')} tensor of shape {tuple(value.shape)}"
    text = repr(value) if isinstance(value, (int, float, bool, str, type(None))) else type(value).__name__
    return f"{text[:MAX_SHOWN]} ({type(value).__name__})" if isinstance(value, (int, float)) else text[:MAX_SHOWN]


@contextmanager
def _isolated_rng(device: torch.device) -> Iterator[None]:
    """Everything the check draws leaves the run's random streams (Python, NumPy, torch) as they were."""
    py, npy = random.getstate(), np.random.get_state()
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        try:
            yield
        finally:
            random.setstate(py)
            np.random.set_state(npy)


def check_family(cls: type[Adapter]) -> list[str]:
    declared = any("family" in vars(c) for c in cls.__mro__ if c is not Adapter)
    if not declared:
        return [f"{cls.__name__}.family: missing, so it would run as 'other'; expected a class attribute, one of {', '.join(FAMILIES)}"]
    return []


def _probe_part(name: str, part: Any, data: ImageData, batch: Batch, cls: str) -> str | None:
    """Run one part's module on a tiny input of its role; a line if the shapes are not the contract's."""
    where = f"{cls}.parts()[{name!r}]"
    if not isinstance(part, Part):
        return f"{where}: got {_show(part)}; expected a bench.Part"
    info, n = data.info, len(batch)
    dev = next((p.device for p in part.module.parameters()), batch.u8.device)
    try:
        with torch.no_grad():
            if part.role == "denoiser":
                t = torch.linspace(0.05, 0.95, n, device=dev)
                x_t = torch.randn(batch.x.shape, generator=torch.Generator().manual_seed(derive_seed(2, "contract"))).to(dev)
                out = part.module(x_t, t)
                ok = isinstance(out, torch.Tensor) and tuple(out.shape) == tuple(x_t.shape)
                want = f"the predicted noise, the shape of x_t = {tuple(x_t.shape)}"
                given = f"x_t float {tuple(x_t.shape)}, t float ({n},) in [0, 1]"
            elif part.role == "encoder":
                out = part.module(batch.x.to(dev))
                ok = isinstance(out, torch.Tensor) and out.shape[0] == n and out[0].numel() == part.features
                want = f"N×features = ({n}, {part.features})"
                given = "x, float N×C×H×W in [-1, 1]"
            elif part.role == "decoder":
                out = part.module(torch.zeros(n, part.latent_dim, device=dev))
                ok = isinstance(out, torch.Tensor) and out.ndim == 4 and out.shape[0] == n and tuple(out.shape[-2:]) == info.shape[1:]
                want = f"an image batch N×C×H×W = ({n}, C, {info.image_size}, {info.image_size})"
                given = f"z, float N×latent_dim = ({n}, {part.latent_dim})"
            else:
                if not 2 <= part.vocab - 1 <= info.levels:
                    return (
                        f"{where}: vocab={part.vocab}; expected levels + 1 = {info.levels + 1} (one token per grey level, "
                        f"the start token last), or fewer bins + 1 (at least 3)"
                    )
                tok = PixelTokens.for_vocab(part.vocab, info.channels, info.image_size, info.levels, device=dev)
                seq = tok.from_pixels(batch.u8.to(dev))
                out = part.module(tok.inputs(seq))
                ok = isinstance(out, torch.Tensor) and tuple(out.shape) == (n, tok.length, part.vocab)
                want = f"logits N×T×vocab = ({n}, {tok.length}, {part.vocab})"
                given = f"tokens, int64 N×T = ({n}, {tok.length}), start token {tok.start} first"
    except Exception as err:
        return f"{where} ({part.role}): module raised {type(err).__name__}: {str(err)[:MAX_SHOWN]}; the role's contract is in bench.Part"
    if ok:
        return None
    return f"{where} ({part.role}): module({given}) returned {_show(out)}; expected {want}"


def _check_losses(losses: Any, cls: str) -> list[str]:
    where = f"{cls}.train_step(batch, step)"
    if not isinstance(losses, dict) or not losses:
        return [f"{where} returned {_show(losses)}; expected a non-empty dict of name -> 0-dim float tensor"]
    out = []
    for k, v in losses.items():
        if k in METRIC_INFO or k in HISTORY_COLUMNS:
            what = "a metric" if k in METRIC_INFO else "a column the harness writes"
            out.append(f"{where} returned a loss named {k!r}, which is {what} in history.csv; rename it (e.g. {f'loss_{k}'!r})")
            continue
        if not isinstance(v, torch.Tensor):
            out.append(
                f"{where} returned {k!s:.{MAX_SHOWN}} = {_show(v)}; expected a 0-dim float tensor "
                "(return loss.detach(), not loss.item(): a Python float waits for the device on every step)"
            )
        elif v.numel() != 1 or not v.is_floating_point():
            out.append(f"{where} returned {k!s:.{MAX_SHOWN}} = {_show(v)}; expected a 0-dim float tensor (a scalar loss)")
    return out


def _check_sample(x: Any, n: int, data: ImageData, cls: str) -> list[str]:
    want = (n, *data.info.shape)
    where = f"{cls}.sample({n}, generator)"
    if not isinstance(x, torch.Tensor) or x.dtype != torch.uint8 or tuple(x.shape) != want:
        return [f"{where} returned {_show(x)}; expected a uint8 tensor of shape {want} (bench.to_uint8 makes one)"]
    levels = data.levels
    off = x != from_levels(to_levels(x, levels), levels)
    if off.any():
        bad = int(x[off][0])
        return [f"{where} returned pixel value {bad}, off the data's {levels}-level grid; expected 0..255 values on it (bench.to_uint8)"]
    return []


def _check_likelihood(ll: Any, n: int, cls: str) -> list[str]:
    if ll is None:
        return []
    where = f"{cls}.log_likelihood(batch)"
    if not isinstance(ll, torch.Tensor) or tuple(ll.shape) != (n,) or not ll.is_floating_point():
        return [f"{where} returned {_show(ll)}; expected None or a float tensor of shape ({n},): log p(x) per example, in nats"]
    if not torch.isfinite(ll).all() or (ll > 1e-4).any():
        return [
            f"{where} returned values outside (-inf, 0]; expected finite log p(x) ≤ 0 nats (a discrete likelihood: a continuous "
            "density must subtract C·H·W·log(levels) for the bins' volume)"
        ]
    return []


def check_adapter(build: Callable[[], Adapter], data: ImageData, device: torch.device | str) -> list[str]:
    """Every violation of the contract, one line each ([] when none), on a throwaway adapter from `build`."""
    device = torch.device(device)
    with _isolated_rng(device):
        adapter = build()
        cls = type(adapter).__name__
        lines = check_family(type(adapter))
        gen = torch.Generator(device=data.train_x.device).manual_seed(derive_seed(0, "contract"))
        conditional = adapter.family in CONDITIONAL_FAMILIES
        style = None
        if conditional and data.style is not None:
            style = BatchSource(data.style.train_x, data.style.train_y, data.levels, CHECK_BATCH, gen, labels=False)
        src = BatchSource(data.train_x, data.train_y, data.levels, CHECK_BATCH, gen, style=style)
        batch = src()
        if conditional and style is None:
            return lines + [
                f"{cls} is a {adapter.family} adapter: it needs a style set (the suite's `style:` key, e.g. style: {{name: photos}})"
            ]
        try:
            parts = adapter.parts()
        except (torch.cuda.OutOfMemoryError, MemoryError):
            raise
        except Exception as err:  # e.g. Part(role="denoizer"): one line naming the method, not a traceback
            lines.append(f"{cls}.parts() raised {type(err).__name__}: {' '.join(str(err).split())[:200]}")
            parts = {}
        if not isinstance(parts, dict):
            lines.append(f"{cls}.parts() returned {_show(parts)}; expected a dict of name -> bench.Part")
            parts = {}
        lines += [msg for name, part in parts.items() if (msg := _probe_part(str(name), part, data, batch, cls))]
        calls: list[tuple[str, Callable[[], list[str]]]] = [
            ("train_step(batch, step)", lambda: _check_losses(adapter.train_step(batch, 0), cls)),
            (
                f"stylize(content, style) on {CHECK_BATCH} pairs" if conditional else f"sample({CHECK_BATCH}, generator)",
                (lambda: _stylize(adapter, batch, data, cls)) if conditional else (lambda: _sample(adapter, data, device, cls, drawn)),
            ),
            ("log_likelihood(batch)", lambda: _check_likelihood(adapter.log_likelihood(batch), CHECK_BATCH, cls)),
            # One line per fault: a likelihood already refused on data is not refused again on samples.
            (
                "log_likelihood(samples)",
                lambda: [] if any(".log_likelihood(" in x for x in lines) else _score_samples(adapter, drawn, data, cls),
            ),
        ]
        drawn: list[torch.Tensor] = []
        for name, call in calls:
            try:
                lines += call()
            except (torch.cuda.OutOfMemoryError, MemoryError):
                raise  # a resource limit, not a broken contract: the run fails with the memory message and its fix
            except Exception as err:  # the adapter's own code may raise anything: one line, not a traceback
                lines.append(f"{cls}.{name} raised {type(err).__name__}: {' '.join(str(err).split())[:200]}")
    return lines


def _sample(adapter: Adapter, data: ImageData, device: torch.device, cls: str, drawn: list[torch.Tensor]) -> list[str]:
    gen = torch.Generator(device=device if device.type == "cuda" else "cpu").manual_seed(derive_seed(1, "contract"))
    adapter.train(False)
    try:
        with torch.inference_mode():
            x = adapter.sample(CHECK_BATCH, gen)
            lines = _check_sample(x, CHECK_BATCH, data, cls)
    finally:
        adapter.train(True)
    if not lines:
        drawn.append(x.clone())  # a valid batch: scored next
    return lines


def _stylize(adapter: Adapter, batch: Batch, data: ImageData, cls: str) -> list[str]:
    """A conditional adapter's output on the check batch's (content, style) pairs: the shape and grid of sample()."""
    assert batch.style is not None
    adapter.train(False)
    try:
        with torch.inference_mode():
            x = adapter.stylize(batch.x, batch.style.x)
    finally:
        adapter.train(True)
    return [
        line.replace(f"sample({CHECK_BATCH}, generator)", "stylize(content, style)") for line in _check_sample(x, CHECK_BATCH, data, cls)
    ]


def _score_samples(adapter: Adapter, drawn: list[torch.Tensor], data: ImageData, cls: str) -> list[str]:
    """Score the model's own samples, as the bpd metric scores data (eval mode, no grad). Where a model puts
    its mass, a continuous log-density is largest: a value above 0 there names the likely cause."""
    if not drawn:
        return []
    x = drawn[0]
    adapter.train(False)
    try:
        with torch.inference_mode():
            ll = adapter.log_likelihood(Batch(x, torch.full((len(x),), -1, dtype=torch.long, device=x.device), data.levels))
    finally:
        adapter.train(True)
    if ll is None:
        return []
    lines = _check_likelihood(ll, len(x), cls)
    if lines and isinstance(ll, torch.Tensor) and ll.shape == (len(x),) and bool((ll > 1e-4).any()):
        return [
            f"{cls}.log_likelihood(batch) on its own samples returned {float(ll.max()):.4g} > 0 nats; a discrete log P(x) is <= 0: "
            f"a continuous density (a flow or a diffusion model on dequantised pixels) must subtract C·H·W·log(levels) for the bins' volume"
        ]
    return lines


def require(build: Callable[[], Adapter], data: ImageData, device: torch.device) -> None:
    """Raise ContractError (one line: the violations joined by '; ') when the adapter breaks the contract."""
    lines = check_adapter(build, data, device)
    if lines:
        raise ContractError("; ".join(lines))
