"""Checkpoint and resume: the unit of recovery inside a run.

A checkpoint holds the adapter (models and optimisers), the loop state with its history, every global RNG
state and the batch generator's state, so a resumed run ends bit-identical to one never interrupted. It is
written atomically at every evaluation and every `runner.checkpoint_every` steps, loaded with
`weights_only=True`, and removed when the run's result is written (the final weights stay, as safetensors:
bench.runner.weights).
"""

from __future__ import annotations

from pathlib import Path

import torch

from bench.adapter.base import Adapter
from bench.core import env
from bench.runner.state import LoopState
from bench.store import runs as store


def save(path: Path, adapter: Adapter, state: LoopState, gen: torch.Generator) -> None:
    store.save_checkpoint(
        path,
        {
            "step": state.step,
            "adapter": adapter.state_dict(),
            "history": state.history,
            "loop": {k: v for k, v in vars(state).items() if k not in ("history",)},
            "rng": env.rng_state(),
            "data_rng": gen.get_state(),
        },
    )


def resume(path: Path, adapter: Adapter, gen: torch.Generator) -> LoopState | None:
    """Load the checkpoint at `path` into `adapter`, `gen` and the global RNGs, and return its loop state.

    None when there is no readable checkpoint. Raises when one unpickled safely but does not fit this run
    (missing keys, wrong shapes): the caller then starts over from a fresh adapter, never trusting it."""
    ckpt = store.load_checkpoint(path)
    if ckpt is None:
        return None
    adapter.load_state_dict(ckpt["adapter"])
    gen.set_state(ckpt["data_rng"])
    state = LoopState(**ckpt["loop"])
    state.history = ckpt["history"]
    if state.step != ckpt["step"]:
        raise ValueError("checkpoint step does not match its loop state")
    state.resumed_from.append(state.step)
    env.set_rng_state(ckpt["rng"])
    return state
