"""The state a run carries through its loop, evaluations and checkpoints: plain data, saved whole at each
checkpoint (`vars(state)`), so a resumed run continues its clocks and history exactly."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class LoopState:
    step: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    extractor_seconds: float = 0.0  # obtaining the domain extractor and real features (trained once per data set)
    compile_seconds: float = 0.0  # the first step after each compile(): tracing and code generation
    compile_steps: int = 0  # steps timed as compile_seconds, so not in train_seconds
    extra_images: int = 0  # images drawn with batch.next() in timed steps: counted in images/s
    first_losses: dict[str, float] = field(default_factory=dict)
    pretrain: dict[str, Any] = field(default_factory=dict)
    resumed_from: list[int] = field(default_factory=list)  # the step of each resume, for provenance
    weights_bytes: int = 0  # size of the final weights as safetensors (bench.runner.weights)

    def log(self, values: dict[str, Any]) -> None:
        """A history row at the current step (losses or metrics), stamped with the training clock so far."""
        self.history.append({"step": self.step, "train_seconds": round(self.train_seconds, 4), **values})
