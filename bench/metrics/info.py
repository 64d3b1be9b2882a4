"""What every metric is, without computing it: name, direction, families, periodic flag, unit and description.

One table, read by the metric registry (each implementation is registered under a name from here) and by the
report, which must run where torch is not installed: this module imports nothing but the standard library.
A new metric gets its row here and its function in a metric module (`@register_metric("name")`).
"""

from __future__ import annotations

from dataclasses import dataclass

LIKELIHOOD_FAMILIES = ("vae", "autoregressive", "flow", "diffusion", "other")


COPYING_THRESHOLD = -3.0  # ct_domain (C_T, a Z-score) below this flags `copying`; see bench/metrics/copying.py


class NotApplicable(Exception):
    """Raised by a metric (or a stage it needs) that has no meaning here; the message is the reason shown in
    reports. Defined in this torch-free leaf so the stages (domain.py) and the context can both raise it."""


@dataclass(frozen=True)
class MetricInfo:
    name: str
    # True / False: the better end. None: neither end is better — a size (params) or a check whose best
    # value is `ideal` (ct_domain: ~0); the report then never stars a "best" cell for it.
    higher_is_better: bool | None
    description: str
    unit: str = ""
    families: tuple[str, ...] | None = None  # None: every family
    periodic: bool = True  # cheap enough to compute at every periodic evaluation
    cost: bool = False  # measured by the runner (time, memory, size), not computed from samples
    flag_below: float | None = None  # the report's verdict flags a run below this (e.g. a data-copying statistic)
    # The values the metric can take. The report draws a t-interval clipped to them (a recall interval of
    # [-0.9, 2.1] from 2 seeds says nothing beyond [0, 1]); the numbers in tables and csv stay unclipped.
    bounds: tuple[float | None, float | None] = (None, None)
    ideal: float | None = None  # the best value when it is neither end (ct_domain: 0); needs higher_is_better None

    @property
    def direction(self) -> str:
        """The one wording of a metric's direction, used by the report, its exports and `bench list metrics`."""
        return direction_text(self.higher_is_better, self.ideal)


def direction_text(higher_is_better: bool | None, ideal: float | None = None) -> str:
    if higher_is_better is not None:
        return "higher is better" if higher_is_better else "lower is better"
    return f"closest to {ideal:g} is best" if ideal is not None else "no better direction (a size, not a score)"


NONNEG = (0.0, None)
UNIT = (0.0, 1.0)


def _rows(*infos: MetricInfo) -> dict[str, MetricInfo]:
    return {i.name: i for i in infos}


METRIC_INFO: dict[str, MetricInfo] = _rows(
    # --- cost: measured by the runner; the names must match the keys of the runner's cost record ---
    MetricInfo("pretrain_seconds", False, "wall time of the pretraining stage (original cost when cached)", "s", cost=True, bounds=NONNEG),
    MetricInfo("train_seconds", False, "wall time of the training loop, evaluation excluded", "s", cost=True, bounds=NONNEG),
    MetricInfo("eval_seconds", False, "wall time of all evaluations", "s", cost=True, bounds=NONNEG),
    MetricInfo("total_seconds", False, "pretrain + train seconds: the compute a result cost", "s", cost=True, bounds=NONNEG),
    MetricInfo("images_per_second", True, "training images processed per second", "img/s", cost=True, bounds=NONNEG),
    MetricInfo("peak_memory_mb", False, "peak CPU RSS, or CUDA max allocated on GPU", "MB", cost=True, bounds=NONNEG),
    MetricInfo("params", None, "trainable and frozen parameters of all the adapter's networks", "count", cost=True, bounds=NONNEG),
    MetricInfo(
        "weights_bytes",
        False,
        "size of the final weights as safetensors (weights.safetensors in the run folder)",
        "B",
        cost=True,
        bounds=NONNEG,
    ),
    # --- likelihood ---
    MetricInfo("bpd", False, "bits per dimension of the test split", "bits/dim", families=LIKELIHOOD_FAMILIES, bounds=NONNEG),
    # --- fidelity in the domain extractor's feature space: the classifier, or the label-free one (no labels) ---
    MetricInfo(
        "fid_domain",
        False,
        "Fréchet distance in the domain extractor's feature space (the classifier; self-supervised without labels)",
        "feature²",
        bounds=NONNEG,
    ),
    MetricInfo("kid_domain", False, "kernel (MMD²) distance in the domain extractor's feature space", "MMD²"),
    MetricInfo("precision_domain", True, "share of generated samples on the real manifold (k=3)", "fraction", bounds=UNIT),
    MetricInfo("recall_domain", True, "share of real samples on the generated manifold (k=3)", "fraction", bounds=UNIT),
    MetricInfo("density_domain", True, "density (Naeem et al. 2020, k=5); about 1 for real data", "ratio", bounds=NONNEG),
    MetricInfo("coverage_domain", True, "coverage (Naeem et al. 2020, k=5): share of real neighbourhoods hit", "fraction", bounds=UNIT),
    # --- memorisation: higher = less copying, but ~0 is ideal (a check, not a score to maximise) ---
    MetricInfo(
        "ct_domain",
        None,
        "data-copying test C_T (Meehan et al. 2020): ~0 like fresh data, < -3 copying, > 0 far from the training set",
        "Z-score",
        periodic=False,
        flag_below=COPYING_THRESHOLD,  # the verdict flags `memorisation` below it
        ideal=0.0,
    ),
    # --- few-shot diversity, in the label-free extractor's space ---
    MetricInfo(
        "intra_ssl",
        True,
        "intra-cluster distance (after intra-LPIPS, Ojha et al. 2021): samples grouped by nearest training image, "
        "mean pairwise distance of label-free features within groups; 0 = emits its training images; <= 100 training images",
        bounds=(0.0, 2.0),
    ),
    # --- mode coverage ---
    MetricInfo("modes", True, "classes covered by generated samples (>= 1 sample each)", "classes", bounds=NONNEG),
    MetricInfo("modes_kl", False, "KL(generated class histogram || real), nats", "nats", bounds=NONNEG),
    # --- standard torch-fidelity metrics: they need downloaded weights, so never at periodic evaluations ---
    MetricInfo("fid", False, "Fréchet Inception distance (torch-fidelity inception-v3-compat)", "feature²", periodic=False, bounds=NONNEG),
    MetricInfo("kid", False, "kernel Inception distance (torch-fidelity)", "MMD²", periodic=False),
    MetricInfo("isc", True, "Inception score of the generated samples (torch-fidelity)", periodic=False, bounds=(1.0, None)),
    MetricInfo("precision", True, "precision in VGG16 features (torch-fidelity, k=3)", "fraction", periodic=False, bounds=UNIT),
    MetricInfo("recall", True, "recall in VGG16 features (torch-fidelity, k=3)", "fraction", periodic=False, bounds=UNIT),
    # --- stylize (conditional): content kept, style taken; see bench/metrics/stylize.py ---
    MetricInfo(
        "content_acc",
        True,
        "share of outputs the content set's domain classifier reads as their content image's class",
        families=("stylize",),
        periodic=False,
        bounds=UNIT,
    ),
    MetricInfo(
        "content_ssim",
        True,
        "SSIM of each output with its content image, on luminance (structure kept), mean over pairs",
        families=("stylize",),
        periodic=False,
        bounds=(-1.0, 1.0),
    ),
    MetricInfo(
        "style_fid",
        False,
        "Fréchet distance of the outputs to the style set's test split, in a label-free extractor trained on the style set",
        families=("stylize",),
        periodic=False,
        bounds=NONNEG,
    ),
    MetricInfo(
        "style_stats",
        False,
        "per pair: distance of feature-map channel means and stds, output vs its style image, in the style extractor",
        families=("stylize",),
        periodic=False,
        bounds=NONNEG,
    ),
    MetricInfo(
        "style_diversity",
        True,
        "mean feature distance between outputs of one content image under different styles (style extractor)",
        families=("stylize",),
        periodic=False,
        bounds=NONNEG,
    ),
)

COST_METRICS: tuple[str, ...] = tuple(n for n, i in METRIC_INFO.items() if i.cost)


def metric_info(name: str) -> MetricInfo | None:
    """The row for `name`, or None for a metric the table does not know (e.g. from an older result)."""
    return METRIC_INFO.get(name)
