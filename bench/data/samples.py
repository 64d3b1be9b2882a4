"""Generated images on disk, from any model: a flat folder of PNG files, or one .npz array, read as uint8
N×C×H×W (what `bench score` measures), and written the same way (`bench sample`).

A folder is read in file-name order, every image at one size and one mode (grey `L` or `RGB`; RGBA/palette are
converted to RGB). An .npz holds one array (or one named `samples`/`images`), uint8, N×H×W (grey), N×C×H×W or
N×H×W×C with C in (1, 3). Anything else is one line naming the file and the fix (exit 2).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch

from bench.core.errors import BenchError
from bench.store.files import atomic_write_bytes

PNG = (".png",)  # lossless only: JPEG artefacts would be scored as the model's


def read_samples(path: str | Path) -> torch.Tensor:
    path = Path(path)
    if path.is_dir():
        return _read_folder(path)
    if path.suffix == ".npz" and path.is_file():
        return _read_npz(path)
    raise BenchError("not a folder of PNG images nor an .npz file", file=str(path), fix="pass a folder of .png files or a .npz array")


def _read_folder(folder: Path) -> torch.Tensor:
    from PIL import Image, UnidentifiedImageError

    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in PNG and p.is_file())
    if not files:
        raise BenchError("no .png images in this folder", file=str(folder), fix="write the samples as PNG files (bench sample does)")
    arrays, first = [], None
    for p in files:
        try:
            with Image.open(p) as im:
                mode = "L" if im.mode in ("L", "I;16", "1") else "RGB"
                a = np.asarray(im.convert(mode))
        except (OSError, UnidentifiedImageError) as err:
            raise BenchError(f"unreadable image ({type(err).__name__})", file=str(p), fix="remove or re-save it") from None
        if first is None:
            first = (a.shape, p.name)
        elif a.shape != first[0]:
            raise BenchError(
                f"image is {a.shape}, but {first[1]} is {first[0]}", file=str(p), fix="give every sample the same size and mode"
            )
        arrays.append(a)
    x = np.stack(arrays)
    return torch.from_numpy(x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2).copy())


def _read_npz(path: Path) -> torch.Tensor:
    try:
        with np.load(path, allow_pickle=False) as z:
            keys = list(z.keys())
            key = next((k for k in ("samples", "images") if k in keys), keys[0] if len(keys) == 1 else None)
            if key is None:
                raise BenchError(
                    f"holds {len(keys)} arrays ({', '.join(keys[:5])})", file=str(path), fix="save one array, or name it 'samples'"
                )
            a = z[key]
    except (OSError, ValueError) as err:
        raise BenchError(f"not a readable .npz ({' '.join(str(err).split())[:120]})", file=str(path), fix="save with numpy.savez") from None
    if a.dtype != np.uint8:
        raise BenchError(f"array '{key}' is {a.dtype}, not uint8", file=str(path), fix="save pixels as uint8 in 0..255")
    if a.ndim == 3:
        a = a[:, None]
    elif a.ndim == 4 and a.shape[1] not in (1, 3) and a.shape[3] in (1, 3):
        a = a.transpose(0, 3, 1, 2)
    if a.ndim != 4 or a.shape[1] not in (1, 3) or len(a) < 2:
        raise BenchError(f"array '{key}' has shape {a.shape}", file=str(path), fix="use N×H×W, N×C×H×W or N×H×W×C with C 1 or 3, N >= 2")
    return torch.from_numpy(np.ascontiguousarray(a))


def write_samples(images: torch.Tensor, path: str | Path) -> Path:
    """uint8 N×C×H×W to `path`: an .npz (one array, `samples`), else a folder of PNG files 000000.png, ..."""
    path = Path(path)
    x = images.detach().cpu().numpy()
    if path.suffix == ".npz":
        buf = io.BytesIO()
        np.savez(buf, samples=x)
        atomic_write_bytes(path, buf.getvalue())
        return path
    path.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(images.detach().cpu()):
        atomic_write_bytes(path / f"{i:06d}.png", _png(img))
    return path


def _png(img: torch.Tensor) -> bytes:
    """One image as PNG, grey images as mode L (so they read back with one channel)."""
    from PIL import Image

    a = img.numpy()
    buf = io.BytesIO()
    Image.fromarray(a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0)).save(buf, format="PNG")
    return buf.getvalue()
