"""The torch-fidelity glue shared by the two `*_domain` feature spaces: the domain classifier (domain.py) and
the label-free extractor (ssl.py). Each is registered with torch-fidelity under its own name and wrapped in
an object the metrics use (features in chunks, the real split's features cached by content).

torch-fidelity builds a feature extractor from its registered name alone, so the name must lead to the
weights: registered name → network (CPU copy). Replaced on retrain, so a name always means the loaded
weights. Bounded above the extractors' memos (domain_cache.MEMO, ssl.MEMO), so every memoised extractor's
name still resolves; an evicted name fails with the message below rather than with other weights.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor

from bench.core.beat import beat
from bench.metrics import domain_cache as cache
from bench.metrics.domain_net import one_thread
from bench.store.locks import build_once

_NETS: OrderedDict[str, nn.Module] = OrderedDict()
_NETS_MAX = 16  # both kinds share it: above twice the largest memo (8 each)

# Every forward pass of an extractor sees exactly FEATURE_CHUNK images, the last chunk padded with blank ones
# whose outputs are dropped. Why: convolution libraries pick their algorithm by the input's shape, and in float32
# another algorithm moves a feature by ~1e-7, so without one shape an image's features would depend on how many
# images came with it (tests/test_feature_chunks.py). Protocols ≤ 4 computed in float64 instead, where such
# differences vanish when rounding to float32, at three times the cost of the evaluation's largest stage.
# 250: the sample chunk, so 500 or 1,000 samples need no padding.
FEATURE_CHUNK = 250
RECIPE = f"float32, BatchNorm folded, in chunks of {FEATURE_CHUNK}"  # part of the real features' cache key


@torch.no_grad()
def fold_batchnorm(net: nn.Module) -> nn.Module:
    """`net` (in eval mode) with every Conv2d → BatchNorm2d pair of a Sequential made one Conv2d with a bias, in
    place. Inference only: eval-mode BatchNorm is an affine map per channel, so it folds into the convolution's
    weights (computed in float64). Same outputs to float32 rounding (~2e-7), a quarter less time for the
    extractors' pass (0.045 → 0.032 CPU s per 500 images on the 10-CNN ensemble)."""
    for seq in [m for m in net.modules() if isinstance(m, nn.Sequential)]:
        for i in range(len(seq) - 1):
            conv, bn = seq[i], seq[i + 1]
            if not (isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d)) or bn.training or not bn.track_running_stats:
                continue
            var = bn.running_var.double()
            gamma, beta = (bn.weight.double(), bn.bias.double()) if bn.affine else (torch.ones_like(var), torch.zeros_like(var))
            scale = gamma / torch.sqrt(var + bn.eps)
            bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(scale)
            fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                              conv.dilation, conv.groups, bias=True, padding_mode=conv.padding_mode)  # fmt: skip
            fused.weight.copy_(conv.weight.double() * scale.view(-1, 1, 1, 1))
            fused.bias.copy_((bias - bn.running_mean.double()) * scale + beta)
            seq[i], seq[i + 1] = fused.to(conv.weight.device).eval(), nn.Identity()
    return net


def in_chunks(
    fn: Callable[[torch.Tensor], tuple[torch.Tensor, ...]], u8: torch.Tensor, size: int = FEATURE_CHUNK
) -> tuple[torch.Tensor, ...]:
    """fn over `u8` in chunks of exactly `size` images (padded), outputs concatenated along the batch.

    fn must treat images independently (eval-mode BatchNorm, no batch statistics). On CUDA, cuDNN runs
    deterministic and without TF32, whose 10-bit mantissa would move features by ~1e-3."""
    outs: list[tuple[torch.Tensor, ...]] = []
    with torch.no_grad(), torch.backends.cudnn.flags(enabled=True, benchmark=False, deterministic=True, allow_tf32=False):
        for chunk in u8.split(size):
            n = len(chunk)
            if n < size:
                chunk = torch.cat([chunk, chunk.new_zeros((size - n, *chunk.shape[1:]))])
            outs.append(tuple(o[:n] for o in fn(chunk)))
    return tuple(torch.cat(parts) for parts in zip(*outs, strict=True))


class RegisteredFeatureExtractor(FeatureExtractorBase):
    """torch-fidelity view of a registered network: uint8 N×C×H×W in, a tuple of `features_list` out."""

    WHAT: ClassVar[str] = "extractor"  # for the error message: which kind, and the call that loads it
    LOADER: ClassVar[str] = ""

    def __init__(self, name: str, features_list: list[str], **kwargs: Any):
        super().__init__(name, features_list)
        if name not in _NETS:
            raise ValueError(f"{self.WHAT} '{name}' is not loaded in this process (call {self.LOADER} first)")
        self.net = fold_batchnorm(copy.deepcopy(_NETS[name]).eval()).float().requires_grad_(False)

    def outputs(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The network's outputs by name (float32); the subclass says which names."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if not (torch.is_tensor(x) and x.dtype == torch.uint8 and x.dim() == 4):
            raise ValueError("expecting uint8 images N×C×H×W")

        def named(chunk: torch.Tensor) -> tuple[torch.Tensor, ...]:
            out = self.outputs(chunk)  # one pass for every name
            return tuple(out[k] for k in self.features_list)

        return tuple(o.float() for o in in_chunks(named, x))

    @staticmethod
    def can_be_compiled() -> bool:
        return False

    @staticmethod
    def get_dummy_input_for_compile() -> torch.Tensor:
        return torch.zeros(1, 1, 8, 8, dtype=torch.uint8)


def register(name: str, net: nn.Module, cls: type[RegisteredFeatureExtractor]) -> None:
    _NETS[name] = copy.deepcopy(net).cpu()
    _NETS.move_to_end(name)
    while len(_NETS) > _NETS_MAX:
        _NETS.popitem(last=False)
    if name not in FEATURE_EXTRACTORS_REGISTRY:  # torch-fidelity's own registry: one class per name, tiny
        register_feature_extractor(name, cls)


class RegisteredExtractor:
    """The object the metrics use: a registered network, its description and features in chunks."""

    PREFIX: ClassVar[str] = "bench-extractor"
    EXTRACTOR: ClassVar[type[RegisteredFeatureExtractor]] = RegisteredFeatureExtractor

    def __init__(self, net: nn.Module, digest: str, info: dict[str, Any], device: torch.device):
        self.hash, self.info, self.device = digest, info, torch.device(device)
        self.name = f"{self.PREFIX}-{digest[:8]}"
        register(self.name, net, self.EXTRACTOR)
        self.features_list = list(self.EXTRACTOR.get_provided_features_list())
        self.extractor = self.EXTRACTOR(self.name, self.features_list).to(self.device)

    def describe(self) -> dict[str, Any]:
        return dict(self.info)

    def features(self, u8: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every provided output (CPU float32) of uint8 images; no batch size: see FEATURE_CHUNK."""
        outs: dict[str, list[torch.Tensor]] = {k: [] for k in self.features_list}
        with one_thread(self.device):
            for chunk in u8.split(FEATURE_CHUNK):
                beat("computing features for the evaluation")
                for k, v in zip(self.features_list, self.extractor(chunk.to(self.device)), strict=True):
                    outs[k].append(v.cpu())
        return {k: torch.cat(v) for k, v in outs.items()}

    def real_features(self, test_x: torch.Tensor, cache_dir: Path) -> dict[str, torch.Tensor]:
        """Features of the real reference, cached by content (split pixels × weights), never by name."""
        path = cache.features_path(cache_dir, test_x, self.hash, self.info["weights_sha256"], RECIPE)

        def _compute() -> dict[str, torch.Tensor]:
            feats = self.features(test_x)
            cache.save_features(path, feats, self.hash)
            return feats

        # Under a lock: a concurrent launcher waits for these features instead of computing them too.
        return build_once(path.with_suffix(".lock"), lambda: cache.load_features(path, tuple(self.features_list), len(test_x)), _compute)
