"""external: weights from a file (safetensors, or torch with weights_only=True), or a timm pretrained name.

- `path:` a `.safetensors` file, or a torch file read with `torch.load(weights_only=True)` (no pickled code
  ever runs). Relative paths are from the working directory; `~` is expanded. The keys follow
  bench/tasks/weights.py: `<part>.<param>`, `module.<name>.<param>` (a saved `adapter.state_dict()`), or a
  plain state dict of the one part `parts:` selects. A pretraining cache entry's weights.safetensors is a
  valid file too.
- `sha256:` pins the file's content; a different hash is refused before anything is loaded.
- `timm_model:` a timm name with pretrained weights, loaded into the one selected part; its state dict must
  match that part's (the same architecture). timm downloads through the Hugging Face hub, so offline it
  needs the weights already in the hub cache; otherwise the error names the folder, and `path:` as the
  alternative.

No cache: the file is its own cache. `seconds` is the time to read, check and load it.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import torch

from bench.adapter.base import Adapter
from bench.core.errors import ConfigError, DataUnavailable
from bench.suite.spec import RunSpec
from bench.tasks.cache import file_sha256
from bench.tasks.common import ALL_PARTS, select_parts
from bench.tasks.strategy import PretrainOutcome, StrategyNotApplicable
from bench.tasks.vit_weights import fit_vit_state, format_report, is_vit
from bench.tasks.weights import flatten, load_weights, part_state

ROLES = ("encoder", "decoder", "sequence")
WRAPPERS = ("state_dict", "model", "adapter")  # common top-level wrappers around a state dict


def read_state_file(path: Path, sha256: str | None, where: str) -> tuple[dict[str, torch.Tensor], str]:
    """Flat tensors from a safetensors or torch file, after the optional sha256 check. Returns (tensors, sha256)."""
    if not path.is_file():
        raise DataUnavailable(f"weights file not found: {path}", key=f"{where}.path", fix="place the file there or fix path:")
    digest = file_sha256(path)
    if sha256 is not None and digest != sha256.lower():
        raise ConfigError(
            f"sha256 mismatch for {path}: expected {sha256.lower()}, got {digest}",
            key=f"{where}.sha256",
            fix="the file is not the pinned one; replace it, or update sha256 if the change is intended",
        )
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu"), digest
        except (SafetensorError, OSError, ValueError) as err:
            raise ConfigError(f"cannot read {path} as safetensors ({str(err)[:120]})", key=f"{where}.path") from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # bad zip, pickled code refused by weights_only, truncated file
        msg = str(err).splitlines()[0][:160] if str(err) else type(err).__name__
        raise ConfigError(
            f"cannot read {path} as a torch state dict with weights_only=True ({msg})",
            key=f"{where}.path",
            fix="save a plain state dict (tensors only), or convert it to .safetensors",
        ) from None
    if not isinstance(obj, dict):
        raise ConfigError(f"{path} holds a {type(obj).__name__}, not a state dict", key=f"{where}.path")
    for w in WRAPPERS:
        if isinstance(obj.get(w), dict) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
            obj = obj[w]
            break
    return flatten(obj), digest


def hf_cache_dir() -> str:
    try:
        from huggingface_hub import constants

        return str(constants.HF_HUB_CACHE)
    except ImportError:
        return os.path.join(os.environ.get("HF_HOME", "~/.cache/huggingface"), "hub")


@contextlib.contextmanager
def _hub_offline() -> Iterator[None]:
    """Hugging Face hub offline mode for one call (read at call time by huggingface_hub)."""
    try:
        from huggingface_hub import constants
    except ImportError:
        yield
        return
    before = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = before


def _hub_reachable(timeout: float = 3.0) -> bool:
    # One quick TCP connect instead of the hub client's ~50 s of retries when there is no network.
    try:
        socket.create_connection(("huggingface.co", 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def timm_state(name: str, where: str) -> dict[str, torch.Tensor]:
    try:
        import timm
    except ImportError:
        raise DataUnavailable(
            "timm is not installed", key=f"{where}.timm_model", fix="pip install timm, or save the weights to a file and set path:"
        ) from None
    if not timm.is_model(name):
        raise ConfigError(f"unknown timm model '{name}'", key=f"{where}.timm_model", fix="see timm.list_models(pretrained=True)")
    try:
        with _hub_offline():  # the local cache first: no network round trips when the weights are there
            model = timm.create_model(name, pretrained=True, num_classes=0)  # no classifier: parts are trunks
    except Exception as cached_err:  # a cache miss surfaces as one of several hub/OS error types
        if not _hub_reachable():
            first = (str(cached_err).splitlines() or [type(cached_err).__name__])[0][:100]
            raise DataUnavailable(
                f"timm model '{name}': pretrained weights are not in the local cache and the hub is unreachable ({first})",
                key=f"{where}.timm_model",
                fix=f"run once online to fill the Hugging Face cache at {hf_cache_dir()} (or set HF_HOME), "
                "or save the state dict to a .safetensors file and set path: instead",
            ) from None
        try:
            model = timm.create_model(name, pretrained=True, num_classes=0)  # no classifier: parts are trunks
        except Exception as err:
            first = (str(err).splitlines() or [type(err).__name__])[0][:120]
            raise DataUnavailable(
                f"timm model '{name}': download failed ({first})", key=f"{where}.timm_model", fix="retry, or use path:"
            ) from None
    return dict(model.state_dict())


def load_vits(
    adapter: Adapter, tensors: dict[str, torch.Tensor], names: list[str], only: bool, source: str, where: str, info: dict
) -> list[str]:
    """Fit the file into each ViT part (interpolated position embedding, adapted patch embedding), print what
    loaded, resized or stayed random, and record it under `info["load_report"][part]` (result.json's `pretrain`)."""
    reports = info.setdefault("load_report", {}) if names else {}
    for n in names:
        module = adapter.parts()[n].module
        fitted, report = fit_vit_state(module, part_state(adapter, tensors, n, only, source))
        if not report["loaded"] and not report["resized"]:
            raise ConfigError(
                f"{source}: no tensor of the file fits part '{n}' ({len(report['random'])} tensors would stay random)",
                key=where,
                fix="match the adapter's width, heads and mlp_ratio to the file's ViT (e.g. dim: 192, heads: 3 for a vit_tiny)",
            )
        with torch.no_grad():
            module.load_state_dict(fitted, strict=True)
        reports[n] = report
        print(format_report(n, source, report), flush=True)
    return list(names)


def run(adapter: Adapter, run: RunSpec, device: torch.device) -> PretrainOutcome:
    spec, where = run.strategy_spec, f"strategies.{run.strategy}"
    t0 = time.perf_counter()
    # Resolve parts first: a pair that cannot apply is n/a before any file is touched.
    names = None if spec.parts is None or any(p in ALL_PARTS for p in spec.parts) else select_parts(adapter, spec.parts, ROLES, "external")
    info: dict = {}
    if spec.path:
        path = Path(spec.path).expanduser()
        tensors, digest = read_state_file(path, spec.sha256, where)
        source, info = str(path), {"file": str(path), "file_sha256": digest}
    else:
        assert spec.timm_model is not None  # check_strategy: path or timm_model
        if names is None or len(names) != 1:
            raise StrategyNotApplicable(
                f"external timm_model loads into exactly one part; set parts: to one of {', '.join(adapter.parts())}"
            )
        tensors, source = timm_state(spec.timm_model, where), f"timm:{spec.timm_model}"
        info = {"timm_model": spec.timm_model}
    if names is None and not any(k.startswith("module.") for k in tensors):
        names = [n for n in adapter.parts() if any(k.startswith(f"{n}.") for k in tensors)] or None
    vits = [n for n in names or [] if is_vit(adapter.parts()[n].module)]
    loaded = load_vits(adapter, tensors, vits, len(names or []) == 1, source, where, info)
    rest = None if names is None else [n for n in names if n not in vits]
    if rest is None or rest:
        loaded += load_weights(adapter, tensors, rest, source)
    info["tensors"] = len(tensors)
    return PretrainOutcome(seconds=time.perf_counter() - t0, cached=False, parts=loaded, info=info)
