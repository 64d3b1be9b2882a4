"""The evaluation protocol, as data: written into every result so numbers from different protocols are never
silently compared. See DESIGN.md, "Evaluation protocol"."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.metrics.context import SAMPLE_CHUNK
from bench.metrics.copying import CT_DEFINITION
from bench.metrics.diversity import INTRA_DEFINITION
from bench.metrics.domain import ARCH_VERSION, TrainConfig, cached_description, classifier_hash, is_stacked, member_seeds, working_size
from bench.metrics.fidelity import DC_NEIGHBORHOOD, KID_SEED, KID_SUBSETS, PRC_NEIGHBORHOOD, kid_subset_size
from bench.metrics.likelihood import BPD_CONVENTION
from bench.metrics.modes import MODES_DEFINITION
from bench.metrics.registered import RECIPE
from bench.metrics.ssl import MODES_NO_LABELS, has_labels
from bench.metrics.ssl import protocol_description as ssl_protocol_description
from bench.suite.spec import PROTOCOL_VERSION

# The extractor's own variance, measured (benchmarks/extractor_stability.py): fid_domain of fixed samples of
# the smoke suite's adapters under 5 extractor seeds (disjoint member seeds). Each run adds its members' spread.
EXTRACTOR_SEED_VARIANCE = {
    "measured_by": "benchmarks/extractor_stability.py --references (seed-0 smoke samples of dummy and cnn_gan, "
    "and real digits with 5/20/50% of pixels moved by 2 grey levels; extractor seeds 0-4)",
    "fid_domain_std_over_mean": {"single cnn (protocol 1)": "8.6-14.4%", "ensemble of 10 (this protocol)": "2.9% dummy, 3.9% cnn_gan"},
}

if TYPE_CHECKING:
    from bench.data.datasets import ImageData
    from bench.suite.spec import EvalSpec


def _domain_resize(size: int) -> str:
    work = working_size(size)
    if work == size:
        return f"no resizing ({size} px)"
    return f"{'bilinear up' if work > size else 'area down'} from {size} to {work} px"


def describe(spec: EvalSpec, data: ImageData, cache_dir: Path | None = None) -> dict[str, Any]:
    """The protocol a result was measured under. With `cache_dir`, the domain classifier's test accuracy (or the
    label-free extractor's weights hash, when the target has no labels) is included when it has been trained
    already (describing never trains one)."""
    data = data.reference()
    n_real = len(data.test_x)
    size = int(data.train_x.shape[-1])
    labelled = has_labels(data)
    if labelled:
        extractor: dict[str, Any] = {
            "name": "domain classifier",
            "arch": ARCH_VERSION + ("/stacked-per-channel" if is_stacked(data) else ""),
            "hash": classifier_hash(data),
            "train_config": asdict(TrainConfig()),
            "member_seeds": member_seeds(TrainConfig()),
            "trained_on": "the full training split of the target (before `limit`), never the test split",
            "seed_variance": EXTRACTOR_SEED_VARIANCE,
        }
        known = cached_description(data, cache_dir) if cache_dir is not None else None
        if known:
            extractor.update({k: known[k] for k in ("accuracy", "digit_accuracy", "feature_dim", "weights_sha256") if k in known})
    else:  # no labels: the label-free extractor (metrics/ssl.py) measures every *_domain metric
        extractor = ssl_protocol_description(data, cache_dir)
    # Only where asked for, so the description of a labelled run without it stays as it was.
    extra = {"diversity": INTRA_DEFINITION} if "intra_ssl" in spec.metrics else {}
    return {
        "protocol_version": PROTOCOL_VERSION,
        "reference": {"split": "test", "size": n_real},
        "num_samples": spec.num_samples,
        "sample_chunk": SAMPLE_CHUNK,
        "extractor": extractor,
        "extractor_pass": RECIPE,  # the same for every batch size (registered.FEATURE_CHUNK)
        "resizing": (
            f"domain metrics: pixels to [-1, 1], {_domain_resize(size)}; "
            "fid/kid/isc/precision/recall: torch-fidelity TF1 bilinear to 299 px (Inception) / 224 px (VGG16), grey repeated to RGB"
        ),
        "kid": {"subset_size": kid_subset_size(spec.kid_subset_size, spec.num_samples, n_real), "subsets": KID_SUBSETS, "seed": KID_SEED},
        "precision_recall_k": PRC_NEIGHBORHOOD,
        "density_coverage_k": DC_NEIGHBORHOOD,
        "bpd": BPD_CONVENTION,
        "modes": MODES_DEFINITION if labelled else MODES_NO_LABELS,
        "ct": CT_DEFINITION,
        **extra,
    }
