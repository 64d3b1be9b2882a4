"""Every random stream of a run comes from one seed and a purpose: `derive_seed(seed, purpose)`.

The purposes are listed in `PURPOSES`; a test checks that every call names one of them, so a new stream is a
new, documented purpose rather than `seed + 10_000` somewhere.
"""

from __future__ import annotations

import hashlib

# purpose -> what the stream drives. Adding a purpose changes no existing stream (each is hashed apart).
PURPOSES: dict[str, str] = {
    "init": "the global random state before the adapter is built: its initial weights",
    "data": "the generator that draws the training batches (their order; batch.next() too)",
    "pretrain": "the pretraining stage: initialisation, data order and noise of a strategy's task",
    "train": "initialisation after pretraining, data order and noise of the training loop",
    "eval": "the generator every evaluation samples from (the same latents for every strategy of a seed)",
    "contract": "the throwaway adapter and batch of the contract check (never the run's own streams)",
    "extractor": "one member of the domain extractor ensemble (its seed is the member index)",
    "mask": "the masks of the autoencode task",
    "pairs": "the fixed (content, style) evaluation pairs of a stylize suite (seed 0 for every run: one fixed set)",
    "style_loss": "the fixed random weights of the stylize loss network (bench.adapter.style_loss; seed 0, never trained)",
    "denoise": "the times and noise of the denoise task (its fixed before/after probe draws from `eval`)",
}


def derive_seed(seed: int, purpose: str) -> int:
    """A seed for one purpose of one run ("pretrain", "train"), independent of every other (seed, purpose).

    sha256 of "bench/<purpose>/<seed>", its first 8 bytes as a 63-bit integer. Run seeds lie in [0, 2^32), and
    a derived seed does too only with probability 2^-31, so a derived stream is never another run's own
    stream (unlike `seed + 1`, which is seed+1's initialisation stream), and two purposes never share one.
    """
    if purpose not in PURPOSES:
        raise ValueError(f"unknown seed purpose {purpose!r}: add it to bench.core.seeds.PURPOSES")
    return int.from_bytes(hashlib.sha256(f"bench/{purpose}/{seed}".encode()).digest()[:8], "big") >> 1
