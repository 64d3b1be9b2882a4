"""An ensemble extractor's members, trained once and shared by the processes that need them at the same time.

`bench run --jobs K` starts K workers together, and on a fresh cache the first evaluation of each needs the same
extractor: the domain classifier (10 members, ~6 CPU s on digits) or the label-free one (~13 CPU s). Under one
lock for the whole ensemble, one worker trained it while the others sat idle. The members are independent (each
has its own seed and generator, trains on one thread and leaves the run's RNG alone), so here each one is a cache
entry of its own. A process trains the members nobody has claimed, skips those another process is training, then
waits for those and loads them. Which process trained which member changes nothing: a member's weights depend
only on its seed, its data and its config.

    <folder>/<digest>.m<j>.safetensors   member j: its state dict ("state.*") and its final loss ("loss")

The caller assembles the ensemble from them and stores it under the ensemble's own lock. The member files stay
beside it (about as large as the ensemble): a process that was still collecting members when another stored the
ensemble loads them, where a deleted file would have it train that member again (seen in tests/test_members.py).
A member file that does not load, or was written for another member or seed, is trained again.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from bench.store import cachefile, locks

Trained = tuple[nn.Module, float]  # a trained member and its final loss (nan when its trainer reports none)
WHAT = "ensemble member weights"


@dataclass(frozen=True)
class MemberFiles:
    """Where the members of one ensemble (`digest`, its cache key) live while it is being trained."""

    folder: Path
    digest: str

    def path(self, j: int) -> Path:
        return self.folder / f"{self.digest}.m{j}.safetensors"

    def lock(self, j: int) -> Path:
        return self.path(j).with_suffix(".lock")

    def load(self, j: int, seed: int, blank: Callable[[], nn.Module]) -> Trained | None:
        tensors = cachefile.load_tensors(self.path(j), WHAT)
        if tensors is None or int(tensors.get("seed", torch.tensor(-1))) != seed:
            return None
        state = {k.removeprefix("state."): v for k, v in tensors.items() if k.startswith("state.")}
        net = blank()
        try:
            net.load_state_dict(state, strict=True)
        except Exception as err:  # wrong keys or shapes: a file of another architecture under this name
            cachefile.warn(self.path(j), WHAT, f"does not fit the member: {type(err).__name__}")
            return None
        return net.eval().requires_grad_(False), float(tensors["loss"])

    def save(self, j: int, seed: int, trained: Trained) -> None:
        net, loss = trained
        tensors = {f"state.{k}": v for k, v in net.state_dict().items()}
        tensors["loss"], tensors["seed"] = torch.tensor(loss, dtype=torch.float64), torch.tensor(seed, dtype=torch.int64)
        cachefile.save_tensors(self.path(j), tensors, metadata={"ensemble": self.digest})


def shared_members(
    files: MemberFiles, seeds: list[int], train_one: Callable[[int], Trained], blank: Callable[[], nn.Module]
) -> list[Trained]:
    """Every member, in seed order: loaded if another process has trained it, else trained here. First pass:
    the members nobody holds; second pass: wait for those other processes hold (a holder that died leaves a
    stale lock, and this process trains that member itself)."""
    out: dict[int, Trained] = {}
    held: list[int] = []

    def build(j: int) -> Trained:
        got = train_one(seeds[j])
        files.save(j, seeds[j], got)
        return got

    for j, seed in enumerate(seeds):
        got = files.load(j, seed, blank)
        if got is not None:
            out[j] = got
            continue
        lock = locks.try_acquire(files.lock(j))
        if lock is None:
            held.append(j)
            continue
        with lock:
            out[j] = files.load(j, seed, blank) or build(j)
    for j in held:
        out[j] = locks.build_once(files.lock(j), lambda j=j: files.load(j, seeds[j], blank), lambda j=j: build(j))
    return [out[j] for j in range(len(seeds))]


def no_loss(net: nn.Module) -> Trained:
    return net, math.nan
