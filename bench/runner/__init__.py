"""One run: data → pretraining → training loop (budget, periodic eval, checkpoints) → metrics → result.json.

One concern per module:
    run         the Runner: sequences the stages of one run (and `run_one`, what executors call)
    build       `build_adapter(run, data, device, fast)`: the one way an adapter is built for training
    fastpath    the speed switches (`FastPath`): autocast, TF32, channels_last, fused Adam
    loop        the training loop: stepping, loss flushing, divergence, progress bar, compile timing
    evaluation  periodic and final evaluation, the protocol description, cost metrics
    checkpoint  saving and resuming a run's full state
    result      assembling and writing result.json
    weights     the final weights kept as safetensors, and loading them back
    reevaluate  a finished run's kept weights under another eval block (nothing trained)
    score       images from elsewhere through the same metrics; a kept model's evaluation samples
    state       `LoopState`, the data all of them share
"""

from bench.runner.build import build_adapter
from bench.runner.fastpath import FastPath, align_optimizer_state, apply_fast_path, fast_path
from bench.runner.loop import Diverged
from bench.runner.run import Runner, run_one
from bench.runner.state import LoopState

__all__ = [
    "Runner",
    "run_one",
    "build_adapter",
    "FastPath",
    "fast_path",
    "apply_fast_path",
    "align_optimizer_state",
    "Diverged",
    "LoopState",
]
