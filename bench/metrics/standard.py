"""Standard ImageNet-feature metrics, for comparison with the literature: Inception `fid`, `kid`, `isc`
(torch-fidelity's "inception-v3-compat", the TF-FID port) and VGG16 `precision`, `recall` (torch-fidelity's
"vgg16", Kynkäänniemi et al. 2019).

They need pretrained weights, read from `eval.weights_path` (a folder) when set, else from torch.hub's
checkpoint folder ($TORCH_HOME/hub/checkpoints, where torch-fidelity and torchvision download to). The file
is looked for before torch-fidelity is called, and its path handed to it, so torch-fidelity never tries a
download (which would hang offline). Without the file the metric is "not available", with where to put it.

Images go in as torch-fidelity expects them: uint8 RGB (grey images repeated over 3 channels), resized
inside the extractor by torch-fidelity's TF1-compatible bilinear interpolation to 299×299 (Inception) or
224×224 (VGG16). fid/kid/prc use the same torch-fidelity maths as the `*_domain` metrics.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3
from torch_fidelity.metric_isc import KEY_METRIC_ISC_MEAN, isc_features_to_metric
from torch_fidelity.utils import create_feature_extractor

from bench.core.beat import beat
from bench.metrics import register_metric
from bench.metrics.context import EvalContext, NotApplicable
from bench.metrics.domain import split_fingerprint
from bench.metrics.fidelity import fid_from_features, kid_from_features, prc_from_features
from bench.metrics.registered import in_chunks
from bench.store import cachefile

INCEPTION_FILE = URL_INCEPTION_V3.rsplit("/", 1)[1]  # weights-inception-2015-12-05-6726825d.pth
VGG16_FILE = "vgg16-397923af.pth"  # torchvision VGG16_Weights.IMAGENET1K_V1, what torch-fidelity's vgg16 loads
# Images per forward pass, the last chunk padded (registered.in_chunks): one input shape, so an image's features
# never depend on the images computed with it. Smaller than the harness's own 250: these see 299 px inputs.
STANDARD_CHUNK = 50
ISC_SPLITS = 10
ISC_SEED = 2020  # torch-fidelity's default rng_seed for the split shuffle

EXTRACTORS = {  # torch-fidelity name → (weights file, features we read)
    "inception-v3-compat": (INCEPTION_FILE, ("2048", "logits_unbiased")),
    "vgg16": (VGG16_FILE, ("fc2_relu",)),
}


def hub_checkpoints() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def weights_file(file_name: str, weights_path: str | None) -> Path:
    """The weights file to use, or NotApplicable saying exactly where to put it."""
    folder = Path(weights_path).expanduser() if weights_path else hub_checkpoints()
    path = folder / file_name
    if not path.is_file():
        raise NotApplicable(f"not available: place {file_name} at {path} or set eval.weights_path")
    return path


def to_rgb(u8: torch.Tensor) -> torch.Tensor:
    return u8.expand(-1, 3, -1, -1) if u8.shape[1] == 1 else u8


def _extract(extractor: torch.nn.Module, names: tuple[str, ...], u8: torch.Tensor, ctx: EvalContext) -> dict[str, torch.Tensor]:
    def forward(chunk: torch.Tensor) -> tuple[torch.Tensor, ...]:
        beat("computing features for the evaluation")
        return tuple(v.cpu() for v in extractor(to_rgb(chunk).to(ctx.device)))

    return dict(zip(names, in_chunks(forward, u8, STANDARD_CHUNK), strict=True))


def _features(ctx: EvalContext, name: str) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(generated, real) features from a torch-fidelity extractor; real ones cached on disk by content."""
    if name in ctx.cache:
        return ctx.cache[name]
    file_name, names = EXTRACTORS[name]
    path = weights_file(file_name, ctx.spec.weights_path)
    extractor = create_feature_extractor(name, list(names), cuda=False, feature_extractor_weights_path=str(path), verbose=False)
    extractor.to(ctx.device)
    weights_id = [file_name, path.stat().st_size]  # the file name carries the weights' hash prefix
    recipe = f"chunks of {STANDARD_CHUNK}"  # how the features were computed: part of the key
    key = hashlib.sha256(json.dumps([split_fingerprint(ctx.data.test_x), name, weights_id, recipe]).encode()).hexdigest()
    cache = ctx.cache_dir / "features" / f"{key}.safetensors"
    what = f"real-split {name} features"
    real: dict[str, Any] | None = cachefile.load_tensors(cache, what)  # checked against its content hash
    if real is not None and (set(real) != set(names) or any(len(v) != len(ctx.data.test_x) for v in real.values())):
        cachefile.warn(cache, what, "not this split's features")
        real = None
    if real is None:
        real = _extract(extractor, names, ctx.data.test_x, ctx)
        cachefile.save_tensors(cache, real)
    fake = _extract(extractor, names, ctx.samples, ctx)
    ctx.info.setdefault("standard_extractors", {})[name] = {"weights": str(path), "resize": "torch-fidelity TF1 bilinear"}
    ctx.cache[name] = (fake, real)
    return fake, real


@register_metric("fid")
def fid(ctx: EvalContext) -> float:
    fake, real = _features(ctx, "inception-v3-compat")
    return fid_from_features(fake["2048"], real["2048"])


@register_metric("kid")
def kid(ctx: EvalContext) -> float:
    fake, real = _features(ctx, "inception-v3-compat")
    return kid_from_features(fake["2048"], real["2048"], ctx.spec.kid_subset_size)


@register_metric("isc")
def isc(ctx: EvalContext) -> float:
    fake, _ = _features(ctx, "inception-v3-compat")
    if len(fake["logits_unbiased"]) < ISC_SPLITS:
        raise NotApplicable(f"Inception score needs at least {ISC_SPLITS} samples")
    return float(isc_features_to_metric(fake["logits_unbiased"], ISC_SPLITS, True, ISC_SEED)[KEY_METRIC_ISC_MEAN])


def _prc(ctx: EvalContext) -> dict[str, float]:
    if "prc_vgg16" not in ctx.cache:
        fake, real = _features(ctx, "vgg16")
        ctx.cache["prc_vgg16"] = prc_from_features(fake["fc2_relu"], real["fc2_relu"])
    return ctx.cache["prc_vgg16"]


@register_metric("precision")
def precision(ctx: EvalContext) -> float:
    return _prc(ctx)["precision"]


@register_metric("recall")
def recall(ctx: EvalContext) -> float:
    return _prc(ctx)["recall"]
