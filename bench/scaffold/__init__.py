"""`bench new adapter NAME [--family F]`: a ready-to-edit adapter file of that family (the contract in its
comments) and a suite that runs it, written from the templates beside this module (families/F.py.tmpl, the
shared contract.txt, suite.yaml.tmpl). Each template runs as written and passes the contract unmodified
(tests/test_diffusion_flow.py checks every family). Nothing is ever overwritten."""

from __future__ import annotations

import importlib.util
import keyword
from pathlib import Path
from string import Template

from bench.core.errors import BenchError

HERE = Path(__file__).resolve().parent


def class_name(name: str) -> str:
    """my_gan → MyGan: the adapter class's name."""
    return "".join(p[:1].upper() + p[1:] for p in name.split("_") if p) or "Adapter"


def check_name(name: str) -> None:
    if not name.isidentifier() or keyword.iskeyword(name) or not name.isascii():
        raise BenchError(f"'{name[:80]}' is not a Python module name", key="NAME", fix="use letters, digits and _, e.g. my_gan")
    try:
        taken = importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        taken = True
    if taken:  # the suite's `NAME:Class` would import that module instead of the new file
        raise BenchError(f"a module named '{name}' is already importable", key="NAME", fix="choose another name, e.g. my_" + name)


# family -> what its suite measures beside the sample metrics (a likelihood model gets bpd).
FAMILIES: dict[str, list[str]] = {
    "gan": ["fid_domain", "modes", "precision_domain", "recall_domain"],
    "vae": ["fid_domain", "modes", "precision_domain", "recall_domain", "bpd"],
    "autoregressive": ["fid_domain", "modes", "precision_domain", "recall_domain", "bpd"],
    "diffusion": ["fid_domain", "modes", "precision_domain", "recall_domain"],
    "flow": ["fid_domain", "modes", "precision_domain", "recall_domain", "bpd"],
}


def new_adapter(name: str, folder: str | Path = ".", family: str = "gan") -> tuple[Path, Path]:
    """Write `folder/NAME.py` (a runnable `family` adapter) and `folder/NAME.yaml`; refuse (BenchError) if either exists."""
    check_name(name)
    if family not in FAMILIES:
        raise BenchError(f"unknown family '{family[:40]}'", key="--family", fix=f"use one of {', '.join(FAMILIES)}")
    folder = Path(folder)
    files = {folder / f"{name}.py": f"families/{family}.py.tmpl", folder / f"{name}.yaml": "suite.yaml.tmpl"}
    for path in files:
        if path.exists() or path.is_symlink():
            raise BenchError("already exists; nothing was written", file=str(path), fix="choose another NAME or --dir, or move the file")
    values = {"name": name, "cls": class_name(name), "family": family, "metrics": ", ".join(FAMILIES[family])}
    values["contract"] = Template((HERE / "contract.txt").read_text(encoding="utf-8")).substitute(values)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for path, tmpl in files.items():
            with open(path, "x", encoding="utf-8") as f:  # "x": never overwrite, even in a race
                f.write(Template((HERE / tmpl).read_text(encoding="utf-8")).substitute(values))
    except OSError as err:
        raise BenchError(f"cannot write ({err.strerror or err})", file=str(err.filename or folder), fix="pick a writable --dir") from None
    return tuple(files)  # type: ignore[return-value]
