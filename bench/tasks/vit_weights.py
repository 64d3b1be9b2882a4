"""A Vision Transformer state dict (timm's names) fitted into a ViT part of another size, with a record.

A pretrained ViT rarely has the part's exact shape: other image and patch sizes, RGB against grey, a conv
stem in front of the patchify layer, more blocks. Every tensor of the part ends in one of three lists:
- `loaded`: copied as it is (same name and shape; timm's final `norm` also fills an average-pooling
  trunk's `fc_norm`, which is the same LayerNorm in that position);
- `resized`: adapted, with how: the position embedding's grid interpolated (bicubic, as timm and DeiT do at
  a new resolution), the patch embedding's kernel resampled as in FlexiViT (Beyer et al. 2023,
  https://arxiv.org/abs/2212.08013, timm's `resample_patch_embed`) and its RGB filters summed for a grey
  input (timm's `adapt_input_conv`);
- `random`: kept at its initialisation, with the reason (absent from the file, a width that differs, a
  patchify layer behind a conv stem whose channels no RGB filter can stand for).
File tensors that nothing used (a classifier head, blocks beyond the part's depth) are listed as `unused`.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

PATCH_W = "patch_embed.proj.weight"


def is_vit(module: nn.Module) -> bool:
    """A timm-style ViT trunk: patch embedding, blocks and an absolute position embedding."""
    return all(hasattr(module, a) for a in ("patch_embed", "blocks", "pos_embed"))


def _prefix_tokens(module: nn.Module) -> int:
    return int(getattr(module, "num_prefix_tokens", 1))


def _resize_pos_embed(old: torch.Tensor, new: torch.Tensor, new_prefix: int) -> tuple[torch.Tensor, str] | None:
    """Interpolate the grid part of `old` (1, P + g², D) to `new`'s grid; prefix tokens kept when the counts agree."""
    from timm.layers import resample_abs_pos_embed

    if old.ndim != 3 or old.shape[-1] != new.shape[-1]:
        return None
    n_new = new.shape[1] - new_prefix
    g_new = math.isqrt(n_new)
    # The file's prefix count: whatever is left over above a square grid (1 for timm's class token).
    old_prefix = next((p for p in range(0, 9) if math.isqrt(old.shape[1] - p) ** 2 == old.shape[1] - p), None)
    if old_prefix is None or g_new**2 != n_new:
        return None
    g_old = math.isqrt(old.shape[1] - old_prefix)
    grid = resample_abs_pos_embed(old.float(), [g_new, g_new], [g_old, g_old], num_prefix_tokens=old_prefix)
    grid = grid[:, old_prefix:]
    if new_prefix == old_prefix:
        prefix, note = old[:, :old_prefix].float(), "prefix tokens copied"
    else:  # e.g. a file with a class token into a trunk without one: the part's own prefix stays
        prefix, note = new[:, :new_prefix], f"prefix tokens kept random ({old_prefix} in the file, {new_prefix} here)"
    out = torch.cat([prefix.to(grid), grid], 1).to(new.dtype)
    return out, f"grid {g_old}x{g_old} -> {g_new}x{g_new} bicubic; {note}"


def _resize_patch_weight(old: torch.Tensor, new: torch.Tensor) -> tuple[torch.Tensor, str] | None:
    """(D, C, k, k) filters → the part's channels and kernel, or None when no faithful mapping exists."""
    from timm.layers import resample_patch_embed

    if old.ndim != 4 or old.shape[0] != new.shape[0]:
        return None
    w, how = old.float(), []
    if w.shape[1] != new.shape[1]:
        if new.shape[1] != 1:  # behind a conv stem: the input channels are learned features, not colours
            return None
        w, how = w.sum(1, keepdim=True), [f"{old.shape[1]} input channels summed to 1"]
    if tuple(w.shape[-2:]) != tuple(new.shape[-2:]):
        w = resample_patch_embed(w, list(new.shape[-2:]))
        how.append(f"kernel {tuple(old.shape[-2:])} -> {tuple(new.shape[-2:])} (FlexiViT resampling)")
    return w.to(new.dtype), "; ".join(how)


def fit_vit_state(module: nn.Module, state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(the part's full state dict with whatever fits taken from `state`, the load report)."""
    own = module.state_dict()
    aliases = {}
    if "fc_norm.weight" in own and "norm.weight" not in own:
        aliases = {"fc_norm.weight": "norm.weight", "fc_norm.bias": "norm.bias"}
    out: dict[str, torch.Tensor] = {}
    loaded: list[str] = []
    resized: dict[str, str] = {}
    random: dict[str, str] = {}
    used: set[str] = set()
    for k, mine in own.items():
        src = k if k in state else aliases.get(k, k)
        theirs = state.get(src)
        out[k] = mine
        if theirs is None:
            random[k] = "not in the file"
            continue
        used.add(src)
        if tuple(theirs.shape) == tuple(mine.shape):
            out[k] = theirs.to(mine.dtype)
            loaded.append(k if src == k else f"{k} (from {src})")
            continue
        fitted = None
        if k == "pos_embed":
            fitted = _resize_pos_embed(theirs, mine, _prefix_tokens(module))
        elif k == PATCH_W:
            fitted = _resize_patch_weight(theirs, mine)
        if fitted is None:
            random[k] = f"shape {tuple(theirs.shape)} in the file, {tuple(mine.shape)} here"
        else:
            out[k], how = fitted
            resized[k] = f"{tuple(theirs.shape)} -> {tuple(mine.shape)}: {how}"
    report = {"loaded": loaded, "resized": resized, "random": random, "unused": sorted(set(state) - used)}
    return out, report


def format_report(part: str, source: str, report: dict[str, Any]) -> str:
    """A few readable lines for the terminal (the full lists go into result.json)."""
    lines = [
        f"external {source} -> part '{part}': {len(report['loaded'])} loaded, {len(report['resized'])} resized, "
        f"{len(report['random'])} random, {len(report['unused'])} file tensors unused"
    ]
    lines += [f"  resized {k}: {how}" for k, how in report["resized"].items()]
    lines += [f"  random  {k}: {why}" for k, why in report["random"].items()]
    if report["unused"]:
        shown = ", ".join(report["unused"][:6]) + (" …" if len(report["unused"]) > 6 else "")
        lines.append(f"  unused  {shown}")
    return "\n".join(lines)
