"""Cost metrics. The runner measures them (timing and memory are properties of the run, not of samples);
they are registered here so that reports know their direction and units."""

from __future__ import annotations

from bench.metrics import METRICS, Metric

COST_METRICS = {
    "pretrain_seconds": (False, "s", "wall time of the pretraining stage (original cost when cached)"),
    "train_seconds": (False, "s", "wall time of the training loop, evaluation excluded"),
    "eval_seconds": (False, "s", "wall time of all evaluations"),
    "total_seconds": (False, "s", "pretrain + train seconds: the compute a result cost"),
    "images_per_second": (True, "img/s", "training images processed per second"),
    "peak_memory_mb": (False, "MB", "peak CPU RSS, or CUDA max allocated on GPU"),
    "params": (False, "", "trainable and frozen parameters of all the adapter's networks"),
}

for _name, (_hib, _unit, _desc) in COST_METRICS.items():
    METRICS.add(_name, Metric(_name, _hib, None, None, _desc, True, _unit))
