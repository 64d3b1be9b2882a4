"""Learning curves: a column measured at fewer than 3 steps (smoke's evaluations: step 0 and the end) is drawn as
points with ±1 std bars, never as a line that would claim the steps between; denser columns stay lines."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from bench.report import plots


def test_two_measurements_are_points_and_a_logged_loss_is_a_line(tmp_path: Path, monkeypatch) -> None:
    drawn: list[Figure] = []
    monkeypatch.setattr(Figure, "savefig", lambda self, *a, **k: drawn.append(self))
    seeds = [
        [{"step": 0.0, "loss": 2.0 + s, "fid_domain": 500.0 + s}, {"step": 50.0, "loss": 1.5}, {"step": 100.0, "loss": 1.2},
         {"step": 300.0, "loss": 1.0, "fid_domain": 300.0 - s}]
        for s in (0.0, 10.0)
    ]  # fmt: skip
    assert plots.learning_curves("a", {"scratch": seeds}, ["fid_domain"], {}, {"scratch": "C0"}, tmp_path / "c.png")
    (fig,) = drawn
    panels = {ax.get_title().split()[0]: ax for ax in fig.axes if ax.get_visible() and ax.get_title()}
    assert set(panels) == {"loss", "fid_domain"}
    loss_lines = [ln for ln in panels["loss"].get_lines() if len(ln.get_xdata()) > 1]
    assert loss_lines and all(ln.get_linestyle() == "-" for ln in loss_lines)
    fid_lines = [ln for ln in panels["fid_domain"].get_lines() if len(ln.get_xdata()) > 1]
    assert fid_lines and all(ln.get_linestyle() == "None" for ln in fid_lines)  # the points, unjoined
    assert list(fid_lines[0].get_xdata()) == [0.0, 300.0]
