"""The strategy stage: every task changes the initialisation, the cache, external files, n/a pairs, freeze, sources.

Everything runs on CPU with tiny configs and a few dozen pretraining steps, so the file takes seconds.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest
import torch

from bench.adapter.base import ADAPTERS, CONDITIONAL_FAMILIES, Adapter, Batch
from bench.adapter.batch import BatchSource
from bench.core import env
from bench.core.errors import BenchError, ConfigError
from bench.data.datasets import DatasetSpec, load_dataset
from bench.data.style import with_style
from bench.runner import build_adapter, fast_path
from bench.runner.pretrain import StrategyNotApplicable, apply_freeze, pretrain
from bench.suite.load import Budget, EvalSpec, RunnerSpec, RunSpec, StrategySpec
from bench.suite.schema import parse
from bench.tasks import BY_NAME, Task, cache
from bench.tasks.common import load_source
from bench.tasks.weights import part_tensors

CPU = torch.device("cpu")
TINY = {
    "cnn_gan": {"z_dim": 16, "width": 8, "max_width": 16, "feature_dim": 32},
    "wgan_gp": {"z_dim": 16, "width": 8, "max_width": 16, "feature_dim": 32, "n_critic": 2},
    "transformer_gan": {"dim": 16, "depth": 1, "heads": 2, "z_dim": 8},
    "vae": {"width": 8, "feature_dim": 32, "z_dim": 8, "iw_samples": 2},
    "lstm_seq": {"emb": 16, "hidden": 32, "layers": 1},
    "transformer_seq": {"dim": 32, "depth": 1, "heads": 2},
    "dummy": {},
    "ddpm": {"width": 8, "time_dim": 16, "steps": 100, "bound_steps": 8, "sample_steps": 4},
    "realnvp": {"hidden": 16, "scales": 1, "iw_samples": 2},
    "adain": {"width": 8},
    "stytr": {"dim": 16, "depth": 1, "heads": 2},
}
PHOTOS = DatasetSpec("photos")  # the style set of a stylize adapter's runs
DIGITS = {"name": "digits"}


def make_run(adapter: str, strategy: dict[str, Any], seed: int = 0, dataset: dict | None = None) -> RunSpec:
    spec = parse(StrategySpec, strategy, "strategies.s")
    return RunSpec(
        "t",
        adapter,
        dict(TINY[adapter]),
        "s",
        spec,
        seed,
        parse(DatasetSpec, dataset or DIGITS),
        Budget(batch_size=32),
        EvalSpec(),
        RunnerSpec(),
        style=PHOTOS if ADAPTERS.get(adapter).family in CONDITIONAL_FAMILIES else None,
    )


def build(run: RunSpec) -> Adapter:
    env.seed_everything(run.seed)  # as the runner does: the run's seed decides the random initialisation
    return build_adapter(run, with_style(load_dataset(run.dataset), run.style), CPU, fast_path(run, CPU))


def first_losses(run: RunSpec, cache_dir: Path) -> dict[str, float]:
    """What the runner records as result.first_losses: the losses of training step 1 after pretraining."""
    adapter = build(run)
    pretrain(adapter, run, CPU, cache_dir)
    return step0_losses(adapter, run)


def step0_losses(adapter: Adapter, run: RunSpec) -> dict[str, float]:
    env.seed_everything(run.train_seed)  # as the runner reseeds after pretraining
    data = with_style(load_dataset(run.dataset), run.style)
    # A seeded source, as the runner gives, so adapters that draw more per step (batch.next()) work too, and a
    # stylize adapter gets its style batch.
    gen = torch.Generator().manual_seed(run.seed)
    style = None if data.style is None else BatchSource(data.style.train_x, data.style.train_y, data.levels, 32, gen)
    source = BatchSource(data.train_x, data.train_y, data.levels, 32, gen, style=style)
    # Two steps: a network whose output layer starts at zero (ddpm's U-Net, as in Ho et al.) gives the same first
    # loss whatever its other weights are; the second step's loss sees them.
    out = {}
    for step in (0, 1):
        out.update({f"{k}@{step}": float(v) for k, v in adapter.train_step(source(), step).items()})
    return out


def params(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# Every registered adapter × every pretraining task, so a new adapter or task is tested for free. `scratch`
# is left out: it is the reference each case is compared with.
SMALL_SOURCE = {"name": "digits", "classes": [0, 1, 2], "limit": 60}
PAIRS = [(a, t) for a in ADAPTERS.keys() for t in BY_NAME if t != "scratch"]  # noqa: SIM118 (a Registry has keys(), no __iter__)


def applies(adapter: Adapter, task: Task) -> bool:
    """Whether the pair should apply, from the task's declared roles and the adapter's declared parts: a
    whole-model task (and a whole state-dict file) fits any adapter; a part task needs a part of its roles."""
    if task.whole_model or task.name == "external":
        return True
    return any(p.role in task.roles for p in adapter.parts().values())


def strategy_for(task: str, tmp_path: Path, adapter: str) -> dict[str, Any]:
    if task == "external":  # a whole adapter state dict, as torch.save writes it, unlike any fresh init
        donor = build(make_run(adapter, {}, seed=7))
        with torch.no_grad():
            for p in (p for m in donor.modules().values() for p in m.parameters()):
                p.add_(0.1 * torch.randn_like(p))  # a fresh init can be seed-free (the dummy starts at zeros)
        path = tmp_path / "donor.pt"
        torch.save(donor.state_dict(), path)
        return {"task": "external", "path": str(path)}
    return {"task": task, "source": SMALL_SOURCE, "steps": 6}


@functools.cache
def scratch_losses(adapter: str) -> dict[str, float]:
    run = make_run(adapter, {})
    return step0_losses(build(run), run)


@pytest.mark.parametrize("adapter,task", PAIRS, ids=[f"{a}-{t}" for a, t in PAIRS])
def test_every_adapter_task_pair_changes_the_init_or_is_not_applicable(adapter: str, task: str, tmp_path: Path) -> None:
    run = make_run(adapter, strategy_for(task, tmp_path, adapter))
    a = build(run)
    if not applies(a, BY_NAME[task]):
        with pytest.raises(StrategyNotApplicable) as why:
            pretrain(a, run, CPU, tmp_path)
        assert len(str(why.value)) > 10, "a pair that does not apply says why"
        return
    fresh = {k: params(m) for k, m in a.modules().items()}
    out = pretrain(a, run, CPU, tmp_path)
    assert out.parts, "an applicable pair initialises at least one part"
    assert any(not same(fresh[k], params(m)) for k, m in a.modules().items()), "pretraining left every weight as it was"
    # The model's own training step sees the new weights (CPU is deterministic, so any change shows).
    assert step0_losses(a, run) != scratch_losses(adapter)


@pytest.mark.parametrize("adapter,objective", [("transformer_gan", "masked"), ("cnn_gan", "denoise")])
def test_mask_ratio_is_mae_for_transformers_and_denoising_for_cnns(adapter: str, objective: str, tmp_path: Path) -> None:
    strategy = {"task": "autoencode", "source": DIGITS, "steps": 10, "parts": ["discriminator"], "mask_ratio": 0.5}
    run = make_run(adapter, strategy)
    out = pretrain(build(run), run, CPU, tmp_path)
    assert out.info["discriminator.objective"] == objective
    assert out.info["discriminator.loss_final"] < out.info["discriminator.loss_first"]
    assert first_losses(run, tmp_path) != first_losses(make_run(adapter, {}), tmp_path)


def test_supervised_trunk_is_a_good_digit_classifier(tmp_path: Path) -> None:
    run = make_run("cnn_gan", {"task": "supervised", "source": DIGITS, "steps": 150, "lr": 2e-3})
    out = pretrain(build(run), run, CPU, tmp_path)
    assert out.parts == ["discriminator"] and out.seconds > 0 and not out.cached
    assert out.info["discriminator.head_accuracy"] >= 0.9
    assert out.info["discriminator.probe_accuracy"] >= 0.9
    assert out.info["discriminator.loss_final"] < out.info["discriminator.loss_first"]


def test_each_seed_pretrains_its_own_checkpoint_by_default(tmp_path: Path) -> None:
    strategy = {"task": "supervised", "source": DIGITS, "steps": 10}
    r0, r1 = make_run("cnn_gan", strategy, seed=0), make_run("cnn_gan", strategy, seed=1)
    a0, a1 = build(r0), build(r1)
    o0, o1 = pretrain(a0, r0, CPU, tmp_path), pretrain(a1, r1, CPU, tmp_path)
    assert not o0.cached and not o1.cached and o0.info["cache_key"] != o1.info["cache_key"]
    assert o0.info["seed"] == r0.pretrain_seed != o1.info["seed"] == r1.pretrain_seed
    assert o0.info["seed_rule"] == "per_run"
    assert not same(params(a0.D.trunk), params(a1.D.trunk))  # pretraining variance is sampled
    # The derived streams are none of the run seeds' own, and pretraining's is not training's.
    assert not any(0 <= s < 2**32 for s in (r0.pretrain_seed, r1.pretrain_seed, r0.train_seed, r1.train_seed))


@pytest.mark.parametrize("rule", ["shared", 7])
def test_second_seed_hits_the_cache_with_identical_weights(rule: str | int, tmp_path: Path) -> None:
    strategy = {"task": "supervised", "source": DIGITS, "steps": 10, "pretrain_seed": rule}
    r0, r1 = make_run("cnn_gan", strategy, seed=0), make_run("cnn_gan", strategy, seed=1)
    a0, a1 = build(r0), build(r1)
    assert not same(params(a0.D.trunk), params(a1.D.trunk))  # different seeds, different random inits
    o0 = pretrain(a0, r0, CPU, tmp_path)
    o1 = pretrain(a1, r1, CPU, tmp_path)
    assert not o0.cached and o1.cached
    assert o1.seconds == pytest.approx(o0.seconds)  # the original cost is reported on a hit
    assert o1.info["cache_key"] == o0.info["cache_key"]
    assert same(params(a0.D.trunk), params(a1.D.trunk))
    # Anything that determines the weights changes the key: here, the number of steps.
    r2 = make_run("cnn_gan", {**strategy, "steps": 11})
    assert not pretrain(build(r2), r2, CPU, tmp_path).cached


@pytest.mark.parametrize(
    "change",
    [
        {"runner": {"fused_optim": False}},
        {"runner": {"threads": 3}},
        {"runner": {"amp": False}},
        {"identity": {"harness": "0+other"}},
        {"identity": {"adapter_code": "edited"}},
    ],
)
def test_cache_key_covers_switches_and_code(change: dict, tmp_path: Path) -> None:
    import dataclasses

    from bench.tasks import BY_NAME, cache_fields

    run = make_run("cnn_gan", {"task": "generative", "source": DIGITS, "steps": 2})
    other = run
    if "runner" in change:
        other = dataclasses.replace(run, runner=dataclasses.replace(run.runner, **change["runner"]))
    else:
        other = dataclasses.replace(run, identity={**run.identity, **change["identity"]})
    a = build(run)
    task = BY_NAME["generative"]
    key = cache.cache_key(cache_fields(a, run, task, [], "src", 32, CPU))
    assert key != cache.cache_key(cache_fields(a, other, task, [], "src", 32, CPU))
    # log_every only changes when the host syncs: kept out (tests/test_identity.py proves it changes no number).
    quiet = dataclasses.replace(run, runner=dataclasses.replace(run.runner, log_every=7))
    assert key == cache.cache_key(cache_fields(a, quiet, task, [], "src", 32, CPU))


def test_cache_hash_ignores_safetensors_header_order(tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    from bench.store.files import tensors_sha256

    t = {"b": torch.arange(6.0).reshape(2, 3), "a": torch.ones(2, dtype=torch.bfloat16)}
    save_file(dict(t), str(tmp_path / "x.safetensors"), metadata={"k": "1", "j": "2"})
    save_file({"a": t["a"], "b": t["b"]}, str(tmp_path / "y.safetensors"), metadata={"j": "2", "k": "1"})
    # safetensors orders its header metadata by a Rust HashMap (random per process), so the two files may or
    # may not differ byte for byte; the content hash must be equal either way.
    same_content = tensors_sha256(load_file(str(tmp_path / "x.safetensors"))) == tensors_sha256(load_file(str(tmp_path / "y.safetensors")))
    assert same_content and tensors_sha256(t) != tensors_sha256({**t, "a": torch.zeros(2, dtype=torch.bfloat16)})


@pytest.mark.parametrize("damage", ["truncate_weights", "garble_meta", "delete_meta"])
def test_corrupt_cache_entry_is_redone(damage: str, tmp_path: Path) -> None:
    run = make_run("cnn_gan", {"task": "supervised", "source": DIGITS, "steps": 5})
    a = build(run)
    key = pretrain(a, run, CPU, tmp_path).info["cache_key"]
    good = params(a.D.trunk)
    folder = cache.entry_dir(tmp_path, key)
    if damage == "truncate_weights":
        w = folder / cache.WEIGHTS
        w.write_bytes(w.read_bytes()[:100])
    elif damage == "garble_meta":
        (folder / cache.META).write_text('{"key": ')
    else:
        (folder / cache.META).unlink()
    assert cache.load(tmp_path, key) is None
    b = build(run)
    out = pretrain(b, run, CPU, tmp_path)
    assert not out.cached
    assert same(params(b.D.trunk), good)  # deterministic: the redone entry equals the original
    assert cache.load(tmp_path, key) is not None
    assert pretrain(build(run), run, CPU, tmp_path).cached


def _save_external(tmp_path: Path, fmt: str) -> tuple[Path, dict[str, torch.Tensor]]:
    donor = build(make_run("cnn_gan", {}, seed=7))
    if fmt == "safetensors":
        from safetensors.torch import save_file

        path = tmp_path / "d.safetensors"
        save_file({k: v.contiguous() for k, v in part_tensors(donor, ["discriminator"]).items()}, str(path))
    else:  # a whole adapter.state_dict(), as torch.save writes it
        path = tmp_path / "adapter.pt"
        torch.save(donor.state_dict(), path)
    return path, params(donor.D.trunk)


@pytest.mark.parametrize("fmt", ["safetensors", "torch"])
def test_external_file_loads_into_the_part(fmt: str, tmp_path: Path) -> None:
    path, want = _save_external(tmp_path, fmt)
    digest = cache.file_sha256(path)
    run = make_run("cnn_gan", {"task": "external", "path": str(path), "sha256": digest, "parts": ["discriminator"]})
    a = build(run)
    out = pretrain(a, run, CPU, tmp_path)
    assert out.parts == ["discriminator"] and out.info["file_sha256"] == digest
    assert same(params(a.D.trunk), want)
    assert first_losses(run, tmp_path) != first_losses(make_run("cnn_gan", {}), tmp_path)


def test_external_wrong_sha256_is_refused(tmp_path: Path) -> None:
    path, _ = _save_external(tmp_path, "safetensors")
    run = make_run("cnn_gan", {"task": "external", "path": str(path), "sha256": "0" * 64})
    with pytest.raises(ConfigError) as err:
        pretrain(build(run), run, CPU, tmp_path)
    msg = str(err.value)
    assert "sha256 mismatch" in msg and str(path) in msg and "\n" not in msg
    missing = make_run("cnn_gan", {"task": "external", "path": str(tmp_path / "nope.pt")})
    with pytest.raises(BenchError, match="weights file not found"):
        pretrain(build(missing), missing, CPU, tmp_path)


def test_not_applicable_pairs_are_recorded_through_run_suite(tmp_path: Path) -> None:
    from bench.api import run_suite

    suite = {
        "name": "na",
        "dataset": {"name": "digits", "classes": [5, 6, 7, 8, 9], "limit": 50},
        "budget": {"steps": 3, "batch_size": 16},
        "eval": {"num_samples": 20, "metrics": ["bpd"]},
        "seeds": [0],
        "adapters": {"dummy": {}, "lstm_seq": TINY["lstm_seq"]},
        "strategies": {
            "scratch": {},
            "supervised": {"task": "supervised", "source": {"name": "digits", "classes": [0, 1, 2, 3, 4]}, "steps": 3},
            "autoregressive": {"task": "autoregressive", "source": {"name": "digits", "classes": [0, 1, 2, 3, 4]}, "steps": 3},
            "freezed": {"freeze": {"discriminator": 1}},
        },
    }
    df = run_suite(suite, out=tmp_path / "runs", reports=tmp_path / "reports", progress=False)
    status = {(r.adapter, r.strategy): r.status for r in df.itertuples()}
    assert status[("dummy", "scratch")] == "completed"
    assert status[("lstm_seq", "autoregressive")] == "completed"
    for pair in [("dummy", "supervised"), ("dummy", "autoregressive"), ("lstm_seq", "supervised"), ("lstm_seq", "freezed")]:
        assert status[pair] == "not_applicable", pair
    from bench.store import runs as store

    res = {(r.adapter, r.strategy): r for r in store.list_results(tmp_path / "runs" / "na")}
    assert "needs a part with role encoder" in res[("lstm_seq", "supervised")].error
    ar = res[("lstm_seq", "autoregressive")]
    assert ar.timings["pretrain"] > 0 and ar.pretrain["parts"] == ["sequence"]
    assert ar.first_losses != res[("lstm_seq", "scratch")].first_losses


def test_selection_errors_are_not_applicable(tmp_path: Path) -> None:
    for adapter, strategy, why in [
        ("cnn_gan", {"task": "autoregressive", "source": DIGITS, "steps": 1}, "needs a part with role sequence"),
        ("cnn_gan", {"task": "supervised", "source": DIGITS, "steps": 1, "parts": ["generator"]}, "is a decoder"),
        ("vae", {"task": "supervised", "source": DIGITS, "steps": 1, "parts": ["discriminator"]}, "no part or role 'discriminator'"),
    ]:
        run = make_run(adapter, strategy)
        with pytest.raises(StrategyNotApplicable, match=why):
            pretrain(build(run), run, CPU, tmp_path)


def test_freeze_keeps_the_first_blocks_fixed(tmp_path: Path) -> None:
    run = make_run("cnn_gan", {"task": "generative", "source": DIGITS, "steps": 5, "freeze": {"discriminator": 2}})
    a = build(run)
    pretrain(a, run, CPU, tmp_path)
    frozen = apply_freeze(a, run.strategy_spec.freeze)
    assert frozen
    blocks = a.parts()["discriminator"].blocks
    before = [params(b) for b in blocks]
    data = load_dataset(run.dataset)
    for step in range(5):
        idx = torch.randint(0, len(data.train_y), (32,))
        a.train_step(Batch(data.train_x[idx], data.train_y[idx], data.levels), step)
    after = [params(b) for b in blocks]
    assert all(same(x, y) for x, y in zip(before[:2], after[:2], strict=True))
    assert not same(before[-1], after[-1])


def test_sources_are_converted_to_the_target(tmp_path: Path) -> None:
    target = load_dataset(DatasetSpec("digits", classes=[5, 6, 7, 8, 9], limit=100))
    split = parse(StrategySpec, {"task": "supervised", "source": {"name": "digits", "classes": [0, 1, 2, 3, 4]}, "steps": 1})
    src = load_source(split, target.info, "s")
    assert set(src.train_y.tolist()) == {0, 1, 2, 3, 4} and src.train_x.shape[1:] == target.train_x.shape[1:]
    photos = parse(StrategySpec, {"task": "autoencode", "source": {"name": "photos"}, "steps": 1})
    p = load_source(photos, target.info, "s")
    assert p.info.shape == target.info.shape and p.levels == target.levels == 17
    # A class-split supervised run pretrains on 0-4 only and still loads into a 5-9 target's adapter.
    run = make_run(
        "cnn_gan",
        {"task": "supervised", "source": {"name": "digits", "classes": [0, 1, 2, 3, 4]}, "steps": 20},
        dataset={"name": "digits", "classes": [5, 6, 7, 8, 9], "limit": 100},
    )
    out = pretrain(build(run), run, CPU, tmp_path)
    # 20 steps learn the 5 source classes well above chance (0.2); the exact accuracy depends on the run's
    # pretraining seed (derived per run since protocol 2): 0.49 for this seed.
    assert out.info["source_train_size"] == len(src.train_y) and out.info["discriminator.head_accuracy"] > 0.35
