"""Image grids for samples.png and the report."""

from __future__ import annotations

import io
import math
from pathlib import Path

import torch
import torch.nn.functional as F

from bench.store.files import atomic_write_bytes


def grid(images: torch.Tensor, nrow: int | None = None, min_tile: int = 32, pad: int = 1) -> torch.Tensor:
    """uint8 N×C×H×W → uint8 3×H'×W' grid; tiny images are upscaled (nearest) so 8-px digits stay visible."""
    x = images.detach().cpu()
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    scale = max(1, math.ceil(min_tile / x.shape[-1]))
    if scale > 1:
        x = F.interpolate(x.float(), scale_factor=scale, mode="nearest").to(torch.uint8)
    n, c, h, w = x.shape
    nrow = nrow or max(1, math.ceil(math.sqrt(n)))
    ncol = math.ceil(n / nrow)
    out = torch.full((c, ncol * (h + pad) + pad, nrow * (w + pad) + pad), 255, dtype=torch.uint8)
    for i in range(n):
        r, q = divmod(i, nrow)
        out[:, pad + r * (h + pad) : pad + r * (h + pad) + h, pad + q * (w + pad) : pad + q * (w + pad) + w] = x[i]
    return out


def png_bytes(img: torch.Tensor) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img.permute(1, 2, 0).contiguous().numpy()).save(buf, format="PNG")
    return buf.getvalue()


def save_grid(images: torch.Tensor, path: Path, nrow: int | None = None) -> None:
    atomic_write_bytes(Path(path), png_bytes(grid(images, nrow)))
