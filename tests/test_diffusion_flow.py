"""Focused tests for the diffusion and flow baselines (ddpm, realnvp): their bounds are bounds on a discrete
likelihood (summed over every image of a tiny space they stay <= 1), the parts they declare, and sampling."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch

from baselines.ddpm import DDPM, alpha_bars
from baselines.realnvp import RealNVP, squeeze, unsqueeze
from bench.adapter.base import Batch, DataInfo, from_levels, to_levels
from bench.suite import schema

CPU = torch.device("cpu")
TINY = {
    DDPM: {"width": 8, "time_dim": 16, "steps": 12, "bound_steps": 11, "sample_steps": 4},
    RealNVP: {"hidden": 16, "scales": 1, "iw_samples": 2},
}


def make(cls, info: DataInfo, **cfg):
    torch.manual_seed(0)
    return cls(schema.parse(cls.Config, {**TINY[cls], **cfg}), info, CPU)


def every_image(info: DataInfo) -> Batch:
    """All levels^dims images of a tiny space, as one batch."""
    grid = torch.tensor(list(itertools.product(range(info.levels), repeat=info.dims)))
    u8 = from_levels(grid.view(-1, *info.shape), info.levels)
    return Batch(u8, torch.zeros(len(u8), dtype=torch.long), info.levels)


def train_a_little(adapter, info: DataInfo, steps: int = 20) -> None:
    g = torch.Generator().manual_seed(1)
    # A peaked target (two images), so a density that forgot the bin volume would exceed 1 somewhere.
    pattern = torch.tensor([[0, 4, 4, 0], [4, 0, 0, 4]]).repeat(1, info.dims // 4)
    u8 = from_levels(pattern.view(2, *info.shape).repeat(8, 1, 1, 1), info.levels)
    for step in range(steps):
        idx = torch.randint(0, len(u8), (16,), generator=g)
        adapter.train_step(Batch(u8[idx], torch.zeros(16, dtype=torch.long), info.levels), step)


@pytest.mark.parametrize("cls", [DDPM, RealNVP])
def test_bound_sums_to_at_most_one_over_every_image(cls) -> None:
    # 2×2 pixels, 5 levels: 625 images. A lower bound on log P(x) can only lose mass: Σ exp(bound) <= 1.
    info = DataInfo("t", 1, 2, 5, 1)
    adapter = make(cls, info, **({"steps": 100, "bound_steps": 99} if cls is DDPM else {}))
    train_a_little(adapter, info)
    adapter.train(False)
    with torch.inference_mode():
        ll = adapter.log_likelihood(every_image(info)).double()
    assert torch.isfinite(ll).all() and (ll <= 0).all()
    total = float(ll.exp().sum())
    assert total <= 1.0 + 1e-6, total
    if cls is RealNVP:  # a flow's bound is tight enough to see what it learned; a 12-step DDPM's is loose
        # Trained on two images, they hold more of the mass than a uniform model would give them.
        assert float(ll.topk(2).values.exp().sum()) > 2 / 625


class ZeroNet(torch.nn.Module):
    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x)


def test_ddpm_bound_estimate_is_unbiased() -> None:
    # bound_steps = T - 1: one step per stratum, every KL term counted once. With fewer strata the sum is
    # estimated from one draw per stratum, weighted by its size: unbiased, so its mean over draws matches.
    # ε̂ = 0 keeps the per-term error light-tailed (||ε||², mean D), so 200 draws pin the means down.
    info = DataInfo("t", 1, 2, 5, 1)
    full = make(DDPM, info, steps=60, bound_steps=59, schedule="linear")
    few = make(DDPM, info, steps=60, bound_steps=5, schedule="linear")
    assert full._strata() == [(i, i + 1) for i in range(2, 61)]
    strata = few._strata()
    assert len(strata) == 5 and strata[0][0] == 2 and strata[-1][1] == 61
    assert all(a[1] == b[0] and a[0] < a[1] for a, b in zip(strata, strata[1:], strict=False))
    batch = Batch(from_levels(torch.tensor([[[[0, 2], [4, 1]]]]), 5), torch.zeros(1, dtype=torch.long), 5)
    means = []
    for adapter in (full, few):
        adapter.net_ema = ZeroNet()
        draws = []
        with torch.inference_mode():
            for seed in range(200):
                adapter.bound_seed = seed
                draws.append(float(adapter.log_likelihood(batch)))
        draws_t = torch.tensor(draws, dtype=torch.float64)
        means.append((draws_t.mean(), draws_t.std() / len(draws) ** 0.5))
    (m_full, se_full), (m_few, se_few) = means
    assert abs(m_full - m_few) < 4 * (se_full**2 + se_few**2).sqrt(), means


def test_ddpm_decoder_is_a_distribution_over_the_levels() -> None:
    info = DataInfo("t", 1, 2, 5, 1)
    adapter = make(DDPM, info)
    levels = torch.linspace(-1, 1, 5, dtype=torch.float64).view(5, 1, 1, 1).expand(5, 1, 2, 2)
    for mean, std in [(0.13, 0.03), (-0.9, 0.2), (1.4, 0.05)]:
        logp = adapter._decoder_log_prob(levels, torch.full_like(levels, mean), std) / 4  # per pixel (all 4 equal)
        assert float(logp.exp().sum()) == pytest.approx(1.0, abs=1e-9)


def test_schedules_run_from_data_to_noise() -> None:
    for schedule in ("cosine", "linear"):
        ab = alpha_bars(schedule, 1000, 0.03)
        assert ab[0] == 1 and (ab[1:] < ab[:-1]).all() and float(ab[-1]) < 1e-3
    assert float((1 - alpha_bars("cosine", 1000, 0.03)[1]).sqrt()) == pytest.approx(0.03, rel=1e-6)


def test_realnvp_inverts_exactly() -> None:
    info = DataInfo("t", 1, 8, 17, 1)
    adapter = make(RealNVP, info, scales=2)
    for p in adapter.flow.parameters():  # away from the identity it starts as
        torch.nn.init.normal_(p, std=0.05)
    z = torch.randn(3, 1, 8, 8)
    with torch.no_grad():
        u, _ = adapter.flow(z)
        assert torch.allclose(adapter.flow.inverse(u), z, atol=1e-5)
    x = torch.randn(2, 3, 4, 6)
    assert torch.equal(unsqueeze(squeeze(x)), x)


def test_realnvp_log_det_matches_autograd() -> None:
    info = DataInfo("t", 1, 2, 17, 1)
    adapter = make(RealNVP, info)
    for p in adapter.flow.parameters():
        torch.nn.init.normal_(p, std=0.2)
    z = torch.randn(1, 1, 2, 2, dtype=torch.float64)
    adapter.flow.double()
    jac = torch.autograd.functional.jacobian(lambda v: adapter.flow(v.view(1, 1, 2, 2))[0].flatten(), z.flatten())
    _, ld = adapter.flow(z)
    assert float(ld) == pytest.approx(float(torch.linalg.slogdet(jac).logabsdet), abs=1e-9)


@pytest.mark.parametrize("cls", [DDPM, RealNVP])
def test_sampling_is_reproducible_and_on_the_grid(cls) -> None:
    info = DataInfo("t", 1, 8, 17, 1)
    adapter = make(cls, info)
    a = adapter.sample(5, torch.Generator().manual_seed(3))
    b = adapter.sample(5, torch.Generator().manual_seed(3))
    assert a.dtype == torch.uint8 and a.shape == (5, 1, 8, 8) and torch.equal(a, b)
    assert torch.equal(from_levels(to_levels(a, 17), 17), a)


def test_ddpm_encoder_part_shares_the_denoisers_weights() -> None:
    info = DataInfo("t", 1, 8, 17, 1)
    adapter = make(DDPM, info)
    enc = adapter.parts()["encoder"]
    own = {id(p) for p in adapter.net.parameters()}
    assert enc.module.state_dict().keys() and all(id(p) in own for p in enc.module.parameters())
    ups = {id(p) for p in adapter.net.ups.parameters()}
    assert not ups & {id(p) for p in enc.module.parameters()}  # the up path is not in the encoder half
    assert enc.module(torch.zeros(2, *info.shape)).shape == (2, enc.features)


# --- the denoiser role, the contract, the templates -----------------------------------------------
FAMILIES = ("gan", "vae", "autoregressive", "diffusion", "flow")


@pytest.fixture(scope="module")
def digits():
    from bench.data.datasets import load_dataset
    from bench.suite.spec import DatasetSpec

    return load_dataset(DatasetSpec("digits"))


def _template_class(tmp_path, family: str, edit=None):
    from bench.adapter.base import import_from
    from bench.scaffold import class_name, new_adapter

    name = f"tmpl_{family}_{abs(hash(str(tmp_path))) % 10**8}"
    code, _ = new_adapter(name, tmp_path, family)
    if edit:
        code.write_text(edit(code.read_text()))
    return getattr(import_from(name, (tmp_path,)), class_name(name))


def _contract(cls, data) -> list[str]:
    from bench.adapter.contract import check_adapter

    return check_adapter(lambda: cls(schema.parse(cls.Config, {}), data.info, CPU), data, CPU)


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_template_passes_the_contract_unmodified(tmp_path, family: str, digits) -> None:
    cls = _template_class(tmp_path, family)
    assert cls.family == family
    assert _contract(cls, digits) == []


def test_a_flow_that_returns_its_continuous_density_is_caught_at_validate(tmp_path, digits) -> None:
    # The flow template without the bins' volume (and without its clamp): the continuous log-density.
    def forget(code: str) -> str:
        assert " - self.info.dims * math.log(self.info.levels)" in code and ".clamp(max=0.0)" in code
        return code.replace(" - self.info.dims * math.log(self.info.levels)", "").replace(".clamp(max=0.0)", "")

    lines = _contract(_template_class(tmp_path, "flow", forget), digits)
    assert len(lines) == 1 and "own samples" in lines[0] and "log(levels)" in lines[0], lines


def test_a_denoiser_of_the_wrong_shape_is_one_line(tmp_path, digits) -> None:
    def pool(code: str) -> str:  # the denoiser returns a flat vector instead of an image
        return code.replace("nn.Linear(hidden, dims), nn.Unflatten(1, shape))", "nn.Linear(hidden, dims))")

    lines = _contract(_template_class(tmp_path, "diffusion", pool), digits)
    assert any("(denoiser): module(x_t float" in line and "expected the predicted noise" in line for line in lines), lines


def test_an_unknown_part_role_is_one_line_and_exit_2(tmp_path) -> None:
    from click.testing import CliRunner

    from bench.cli import main

    def typo(code: str) -> str:
        return code.replace('bench.Part(n, "denoiser"', 'bench.Part(n, "denoizer"')

    cls = _template_class(tmp_path, "diffusion", typo)
    suite = tmp_path / "s.yaml"
    suite.write_text(f"name: s\ndataset: {{name: digits}}\nadapters: {{{cls.__module__}:{cls.__name__}: {{}}}}\nrunner: {{threads: 1}}\n")
    res = CliRunner().invoke(main, ["validate", str(suite)])
    assert res.exit_code == 2, res.output
    lines = res.output.strip().split("\n")
    assert len(lines) == 1 and "Traceback" not in res.output and "role must be one of" in lines[0] and "denoizer" in lines[0], res.output


def test_part_sizes_by_role() -> None:
    from bench.adapter.base import Part

    net = torch.nn.Linear(2, 2)
    assert Part(net, "denoiser").alpha_bar is None
    for bad in ({"features": 3}, {"patch_size": 2}):
        with pytest.raises(ValueError, match="denoiser"):
            Part(net, "denoiser", **bad)
    with pytest.raises(ValueError, match="alpha_bar"):
        Part(net, "encoder", features=2, alpha_bar=lambda t: t)


def test_difffit_trains_only_biases_norms_and_scales() -> None:
    from bench.runner.pretrain import apply_freeze
    from bench.tasks.strategy import StrategyNotApplicable

    info = DataInfo("t", 1, 8, 17, 1)
    adapter = make(DDPM, info)
    frozen = apply_freeze(adapter, {"denoiser": "difffit"})
    train = {n for n, p in adapter.net.named_parameters() if p.requires_grad}
    assert frozen and train
    assert all(n.endswith(("bias", "gamma")) or ".norm" in n or "out_norm" in n for n in train), train
    assert not any(n.endswith("conv1.weight") for n in train)
    assert any(n.endswith("gamma") for n in train) and any("norm" in n and n.endswith("weight") for n in train)
    assert len(frozen) + len(train) == len(list(adapter.net.parameters()))
    with pytest.raises(StrategyNotApplicable, match="no part 'denoiser'"):
        apply_freeze(make(RealNVP, info), {"denoiser": "difffit"})


def test_a_bound_is_marked_and_never_ranked_against_an_exact_value() -> None:
    from bench.report.stats import Cell, MetricMeta, Row, mark_best

    def row(strategy: str, mean: float, bound: bool) -> Row:
        c = Cell(mean=mean, ci95=0.1, n=3, values=[mean] * 3, bound=bound)
        return Row("m", strategy, "flow", None, {}, 3, [], {"bpd": c})

    meta = {"bpd": MetricMeta("bpd", False)}
    mixed = [row("a", 2.0, True), row("b", 3.0, False)]
    mark_best(mixed, meta)
    assert not any(r.cells["bpd"].best for r in mixed)
    same = [row("a", 2.0, True), row("b", 3.0, True)]
    mark_best(same, meta)
    assert [r.cells["bpd"].best for r in same] == [True, False]


def test_terminal_table_marks_a_bound() -> None:
    import pandas as pd

    from bench.stats.aggregate import BOUND_MARK, terminal_table

    summary = pd.DataFrame(
        [
            {"adapter": a, "strategy": "scratch", "n_runs": 2, "n_completed": 2, "bpd_mean": v, "bpd_ci95": 0.1, "bpd_kind": k}
            for a, v, k in (("flowy", 3.5, "bound"), ("seq", 2.2, "exact"))
        ]
    )
    text = terminal_table(summary, ["bpd"])
    flowy, seq = (line for line in text.splitlines() if line.startswith(("flowy", "seq")))
    assert BOUND_MARK in flowy and BOUND_MARK not in seq and "a bound, not exact" in text


@pytest.mark.slow
def test_diffusion_strategies_run_end_to_end(tmp_path) -> None:
    # Every strategy of the sibling suite on a budget of seconds: what applies completes (with its evidence),
    # what does not is n/a with the reason.
    import yaml

    from bench.api import run_suite

    suite = yaml.safe_load((Path(__file__).resolve().parents[1] / "suites" / "digits-diffusion-flow.yaml").read_text())
    suite.update(
        name="ddf-e2e",
        seeds=[0],
        budget={"steps": 6, "eval_every": 0, "batch_size": 16},
        eval={"num_samples": 50, "metrics": ["bpd"]},
        headline="bpd",  # the suite's fid_domain headline needs the domain classifier: seconds this test does not spend
        adapters={"ddpm": TINY[DDPM], "realnvp": TINY[RealNVP]},
    )
    for spec in suite["strategies"].values():
        if "steps" in spec:
            spec["steps"] = 6
    df = run_suite(suite, out=tmp_path / "runs", reports=tmp_path / "rep")
    status = {(r.adapter, r.strategy): r.status for r in df.itertuples()}
    assert all(status[("ddpm", s)] == "completed" for s in suite["strategies"]), status
    assert {s for (a, s), st in status.items() if a == "realnvp" and st == "completed"} == {"scratch", "generative", "photos"}
    assert (df[df.status == "completed"]["bpd_kind"] == "bound").all()


def test_readme_ddpm_example_passes_the_contract(tmp_path, digits) -> None:
    import re

    from bench.adapter.base import import_from

    section = (Path(__file__).resolve().parents[1] / "docs" / "guide.md").read_text().split("### A diffusion model or a flow", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    name = f"readme_ddpm_{abs(hash(str(tmp_path))) % 10**8}"
    (tmp_path / f"{name}.py").write_text(code)
    cls = import_from(name, (tmp_path,)).TinyDDPM
    assert cls.family == "diffusion" and _contract(cls, digits) == []
