"""The `folder` data set: your own images, `dataset: {name: folder, root: DIR}`.

Layouts (decided by what `root` holds; hidden entries and files that are not images are ignored):
- class folders, as torchvision's ImageFolder: `root/<class>/**/<image>`; labels are the class folders'
  indices in sorted name order;
- flat: `root/<image>`; one unlabelled class (every label -1, num_classes 0).

Images are PNG, JPEG, BMP or WebP, read with Pillow (converted as torchvision's loader does: alpha dropped).
With `image_size`, each is resized (shorter side, bilinear, antialiased) and centre-cropped to a square;
without it, every image must already be the same square size. `channels` converts (1: ITU-R 601 luma,
Pillow's "L"); left unset, it is 1 when every image is grey, else 3. `levels` re-quantises afterwards
(bench.data.datasets.load_dataset).

Splits: without `reference:`, a fixed 75/25 split of the folder (seeded by SPLIT_SEED, the same rule as
digits). With `reference: DIR` (the same layout), every image of `root` trains and the reference folder
is the real side of every metric and what the evaluators learn from: the few-shot protocol, where a model
sees 10 images and is judged against the full target set. Training images are in a fixed shuffled order,
so `limit: N` keeps N images spread over the classes, not the first class.

Every problem with a folder is a ConfigError (exit 2) naming the path: missing, empty, a class folder with
no image, an image Pillow cannot read, mixed or non-square sizes without `image_size`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from bench.core.errors import ConfigError
from bench.data.splits import SPLIT_SEED, Splits
from bench.suite.spec import DatasetSpec

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
GREY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"})
TEST_FRACTION = 0.25
MAX_IMAGES = 200_000  # a folder held in memory as uint8; more is a different tool's job (say so, do not swap)


@dataclass(frozen=True)
class Layout:
    """What a folder holds: its images (sorted relative paths) and their labels."""

    root: Path
    classes: tuple[str, ...]  # () for a flat folder
    files: tuple[Path, ...]
    labels: tuple[int, ...]  # -1 for a flat folder

    @property
    def kind(self) -> str:
        return "class folders" if self.classes else "flat"


def _visible(p: Path) -> bool:
    return not p.name.startswith(".")


def _is_image(p: Path) -> bool:
    return p.suffix.lower() in IMAGE_SUFFIXES and _visible(p) and p.is_file()


def scan(folder: str | None, key: str) -> Layout:
    """List a folder's images and labels without decoding any (cheap: runs at suite validation)."""
    if not folder:
        raise ConfigError("the folder data set needs a folder", key=key, fix="set dataset.root: path/to/images")
    root = Path(folder).expanduser()
    if not root.is_dir():
        what = "is a file, not a folder" if root.exists() else "not found"
        raise ConfigError(f"image folder {what}: {root}", key=key, fix="relative paths are from the working directory")
    try:
        entries = sorted(p for p in root.iterdir() if _visible(p))
        flat = [p for p in entries if _is_image(p)]
        dirs = [p for p in entries if p.is_dir()]
        if flat and dirs:
            raise ConfigError(
                f"{root} holds both images and sub-folders ({flat[0].name}, {dirs[0].name}/)",
                key=key,
                fix="put every image in a class folder, or remove the sub-folders for one unlabelled class",
            )
        if flat:
            return Layout(root, (), tuple(flat), (-1,) * len(flat))
        files: list[Path] = []
        labels: list[int] = []
        for label, d in enumerate(dirs):
            found = sorted(p for p in d.rglob("*") if _is_image(p) and all(_visible(q) for q in p.relative_to(d).parents))
            if not found:
                raise ConfigError(
                    f"class folder {d} has no images ({', '.join(s[1:] for s in IMAGE_SUFFIXES)})",
                    key=key,
                    fix="add images to it or remove it",
                )
            files += found
            labels += [label] * len(found)
    except OSError as err:
        raise ConfigError(
            f"cannot list {err.filename or root}: {err.strerror or err}", key=key, fix="check the folder's permissions"
        ) from None
    if not files:
        raise ConfigError(
            f"no images in {root} ({', '.join(s[1:] for s in IMAGE_SUFFIXES)})", key=key, fix="point root at a folder of images"
        )
    if len(files) > MAX_IMAGES:
        raise ConfigError(f"{len(files)} images in {root}; the folder data set holds at most {MAX_IMAGES} in memory", key=key)
    return Layout(root, tuple(d.name for d in dirs), tuple(files), tuple(labels))


def check(spec: DatasetSpec, where: str) -> None:
    """The cheap checks, at suite validation: both folders exist, hold images, and share a layout."""
    train = scan(spec.root, f"{where}.root")
    if spec.reference is not None:
        _label_map(train, scan(spec.reference, f"{where}.reference"), where)


def signature(spec: DatasetSpec) -> str:
    """A listing signature (paths, sizes, modification times): an in-process cache of the decoded folder is
    reused only while it matches, so a folder edited in a notebook session is read again."""
    h = hashlib.sha256()
    for folder in (spec.root, spec.reference):
        if folder is None:
            continue
        for p in scan(folder, "dataset.root").files:
            try:
                st = p.stat()
            except OSError:
                continue  # read (and reported) when decoding
            h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
    return h.hexdigest()[:16]


def _label_map(train: Layout, ref: Layout, where: str) -> dict[str, int]:
    """Class name → label, from the reference (the full target); the training folder's classes must be among them."""
    if bool(train.classes) != bool(ref.classes):
        raise ConfigError(
            f"root is {train.kind} but reference is {ref.kind}",
            key=f"{where}.reference",
            fix="give both folders the same layout",
        )
    missing = sorted(set(train.classes) - set(ref.classes))
    if missing:
        raise ConfigError(
            f"class folder(s) {', '.join(missing[:5])} of root are not in the reference folder",
            key=f"{where}.reference",
            fix="the reference holds every class of the target",
        )
    return {c: i for i, c in enumerate(ref.classes)}


def _open(path: Path, key: str, full: bool = True):
    """The image at `path`, decoded (`full`) or its header only; any failure is one line naming the file."""
    from PIL import Image, UnidentifiedImageError

    try:
        img = Image.open(path)
        if full:
            img.load()
        return img
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        reason = " ".join(str(err).split())[:120] or type(err).__name__
        raise ConfigError(f"cannot read image {path}: {reason}", key=key, fix="replace or remove the file") from None


def _fit(img, size: int):
    """Resize the shorter side to `size` (bilinear, antialiased), then crop the centre square, as
    torchvision's Resize(size) + CenterCrop(size)."""
    from PIL import Image

    w, h = img.size
    if (w, h) != (size, size):
        scale = size / min(w, h)
        nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
        img = img.resize((nw, nh), Image.BILINEAR)
        left, top = int(round((nw - size) / 2.0)), int(round((nh - size) / 2.0))
        img = img.crop((left, top, left + size, top + size))
    return img


def _shape(files: list[Path], spec: DatasetSpec, key: str) -> tuple[int, int]:
    """(channels, size) for every image, from the headers alone: the suite's values, else the images' own."""
    heads = []
    for p in files:
        with _open(p, key, full=False) as im:
            heads.append((p, im.mode, im.size))
    channels = spec.channels or (1 if all(mode in GREY_MODES for _, mode, _ in heads) else 3)
    if spec.image_size is not None:
        return channels, spec.image_size
    first = heads[0]
    other = next((h for h in heads if h[2] != first[2]), None)
    if other is not None:
        raise ConfigError(
            f"images have different sizes ({first[0].name} {first[2][0]}×{first[2][1]}, {other[0].name} {other[2][0]}×{other[2][1]})",
            key=key,
            fix="set dataset.image_size to resize and centre-crop them",
        )
    w, h = first[2]
    if w != h or not 4 <= w <= 256:
        raise ConfigError(
            f"images are {w}×{h}; without image_size they must be square and 4..256 pixels",
            key=key,
            fix="set dataset.image_size to resize and centre-crop them",
        )
    return channels, w


def decode(layouts: list[Layout], spec: DatasetSpec, key: str) -> list[torch.Tensor]:
    """The images of each layout as one uint8 N×C×S×S tensor per layout, all with the same C and S.
    One image is decoded at a time, so a folder of large photos costs only its resized pixels."""
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = max(Image.MAX_IMAGE_PIXELS or 0, 1 << 28)  # large photos fine; bombs still refused
    channels, size = _shape([p for lay in layouts for p in lay.files], spec, key)
    mode = "L" if channels == 1 else "RGB"
    out = []
    for lay in layouts:
        buf = np.empty((len(lay.files), size, size, channels), dtype=np.uint8)
        for i, p in enumerate(lay.files):
            with _open(p, key) as im:
                buf[i] = np.asarray(_fit(im.convert(mode), size), dtype=np.uint8).reshape(size, size, channels)
        x = torch.from_numpy(buf)
        out.append(x.permute(0, 3, 1, 2).contiguous())
    return out


def load(spec: DatasetSpec) -> Splits:
    """Your own images: a class-folder or flat folder, optionally with a separate reference folder."""
    train = scan(spec.root, "dataset.root")
    if spec.reference is None:
        (x,) = decode([train], spec, "dataset.root")
        y = torch.tensor(train.labels, dtype=torch.long)
        n = len(x)
        n_test = int(round(n * TEST_FRACTION))
        if n_test < 2 or n - n_test < 1:
            raise ConfigError(
                f"{n} images in {train.root}: too few for a 75/25 train/test split",
                key="dataset.root",
                fix="add images (at least 6), or set dataset.reference to a folder of evaluation images",
            )
        perm = np.random.RandomState(SPLIT_SEED).permutation(n)
        tr, te = torch.from_numpy(perm[n_test:]), torch.from_numpy(np.sort(perm[:n_test]))
        return Splits(x[tr], y[tr], x[te], y[te], 256, len(train.classes), meta={"layout": train.kind})
    ref = scan(spec.reference, "dataset.reference")
    to_label = _label_map(train, ref, "dataset")
    xtr, xref = decode([train, ref], spec, "dataset")
    ytr = torch.tensor([to_label[train.classes[i]] if i >= 0 else -1 for i in train.labels], dtype=torch.long)
    yref = torch.tensor(ref.labels, dtype=torch.long)
    order = torch.from_numpy(np.random.RandomState(SPLIT_SEED).permutation(len(xtr)))
    xtr, ytr = xtr[order], ytr[order]
    # Copies of training images in the reference: the literature's few-shot protocol keeps them (the full
    # target set), but they make the data-copying test (ct_domain) meaningless, so the count is recorded.
    seen = {hashlib.sha256(t.numpy().tobytes()).digest() for t in xtr}
    overlap = sum(hashlib.sha256(t.numpy().tobytes()).digest() in seen for t in xref)
    meta = {"layout": train.kind, "reference": str(ref.root), "reference_overlap": overlap}
    return Splits(xtr, ytr, xref, yref, 256, len(ref.classes), eval_x=xref, eval_y=yref, meta=meta)


__all__ = ["IMAGE_SUFFIXES", "Layout", "check", "decode", "load", "scan", "signature"]
