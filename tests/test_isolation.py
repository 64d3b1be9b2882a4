"""Isolation: one run raising, running out of CUDA memory or diverging never stops the others.

The misbehaving adapters live in a module written to a temp folder and are referenced as `module:Class`,
exactly as a user's out-of-tree adapter would be."""

from __future__ import annotations

import gc
import json
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from bench.cli import main
from bench.store import runs as store

pytestmark = pytest.mark.slow  # every test here runs a suite end to end

MODULE = "iso_adapters_under_test"

SOURCE = textwrap.dedent(
    '''
    """Adapters that misbehave on purpose."""
    import weakref

    import torch

    from baselines.dummy import Dummy

    ALIVE = []  # (class name, weak reference) of every adapter built, to check that a failed run's memory is freed


    class Broken(Dummy):
        def __init__(self, config, info, device):
            super().__init__(config, info, device)
            ALIVE.append((type(self).__name__, weakref.ref(self)))

        def train_step(self, batch, step):
            if step == 3:
                raise RuntimeError("boom: deliberately broken adapter")
            return super().train_step(batch, step)


    class OutOfMemory(Broken):
        def __init__(self, config, info, device):
            super().__init__(config, info, device)
            self.ballast = torch.zeros(4 * 2**20)  # 16 MB that must be released after the failure

        def train_step(self, batch, step):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")


    class NaN(Dummy):
        def train_step(self, batch, step):
            out = super().train_step(batch, step)
            return {"nll": out["nll"] * float("nan")} if step == 6 else out


    class Exploding(Dummy):
        def train_step(self, batch, step):
            super().train_step(batch, step)
            return {"nll": torch.tensor(10.0 ** (step + 1))}  # step s reports 10^s after the increment
    '''
)


@pytest.fixture(scope="module", autouse=True)
def adapters_module(tmp_path_factory):
    folder = tmp_path_factory.mktemp("adapters")
    (folder / f"{MODULE}.py").write_text(SOURCE)
    sys.path.insert(0, str(folder))
    yield
    sys.path.remove(str(folder))
    sys.modules.pop(MODULE, None)


def suite(name: str, adapters: dict, **runner) -> dict:
    return {
        "name": name,
        "dataset": {"name": "digits"},
        "budget": {"steps": 12, "eval_every": 0, "batch_size": 16},
        "eval": {"num_samples": 50, "metrics": ["bpd"]},
        "seeds": [0],
        "adapters": adapters,
        "runner": {"log_every": 4, "threads": 1, **runner},
    }


def cli_run(tmp_path: Path, data: dict) -> tuple[int, str, dict[str, dict]]:
    path = tmp_path / f"{data['name']}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    out = tmp_path / "runs"
    res = CliRunner().invoke(main, ["run", str(path), "--out", str(out), "--reports", str(tmp_path / "rep"), "--quiet", "--device", "cpu"])
    assert res.exception is None or isinstance(res.exception, SystemExit), res.output
    results = {r.adapter: r for r in store.list_results(out / data["name"])}
    return res.exit_code, res.output, results


def test_exception_in_one_run_is_recorded_and_others_continue(tmp_path: Path) -> None:
    # The broken adapter comes first, so a crash that stopped the suite would leave dummy unrun.
    code, output, results = cli_run(tmp_path, suite("iso_broken", {f"{MODULE}:Broken": {}, "dummy": {}}))
    assert code == 1, output
    assert "1 run(s) failed" in output
    broken = results[f"{MODULE}:Broken"]
    assert broken.status == "failed"
    assert broken.error == "RuntimeError: boom: deliberately broken adapter"
    assert "Traceback (most recent call last)" in broken.traceback
    assert "in train_step" in broken.traceback and "boom" in broken.traceback
    assert results["dummy"].status == "completed"
    rows = (tmp_path / "runs" / "iso_broken" / "results.csv").read_text()
    assert "failed" in rows and "completed" in rows  # both are in the table


def test_cuda_oom_fails_that_run_frees_memory_and_suite_continues(tmp_path: Path) -> None:
    code, output, results = cli_run(tmp_path, suite("iso_oom", {f"{MODULE}:OutOfMemory": {}, "dummy": {}}))
    assert code == 1, output
    oom = results[f"{MODULE}:OutOfMemory"]
    assert oom.status == "failed"
    assert oom.error.startswith("CUDA out of memory")
    assert "lower budget.batch_size" in oom.error  # says what to do about it
    assert results["dummy"].status == "completed"
    gc.collect()
    built = [ref for name, ref in sys.modules[MODULE].ALIVE if name == "OutOfMemory"]
    assert built, "the OOM adapter was never built"
    assert all(ref() is None for ref in built), "the failed run's adapter (and its tensors) is still referenced"


def test_nonfinite_loss_is_diverged_with_step(tmp_path: Path) -> None:
    code, output, results = cli_run(tmp_path, suite("iso_nan", {f"{MODULE}:NaN": {}, "dummy": {}}))
    assert code == 0, output  # a diverged model is a result, not a failure
    res = results[f"{MODULE}:NaN"]
    assert res.status == "diverged"
    assert res.diverged_at == 7  # train_step(step=6) is the 7th step
    assert "step 7" in res.error and "nan" in res.error
    assert results["dummy"].status == "completed"
    # result.json stays strict JSON even though a loss was NaN
    json.loads((tmp_path / "runs" / "iso_nan" / res.run_id / "result.json").read_text(), parse_constant=pytest.fail)


def test_diverge_threshold(tmp_path: Path) -> None:
    code, output, results = cli_run(tmp_path, suite("iso_thr", {f"{MODULE}:Exploding": {}}, diverge_threshold=1000.0))
    assert code == 0, output
    (res,) = results.values()
    assert res.status == "diverged"
    assert res.diverged_at == 4  # 10^3 is not above 1000; 10^4 is
    assert res.steps_done == 4
