"""Parts name their sizes by role, and the autoregressive task reads a sequence part with the very token layout
the sequence baselines train on (bench.adapter.tokens), so pretrained weights mean the same thing to the model."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from bench.adapter.base import ADAPTERS, ROLE_SIZE, Batch, Part
from bench.core.env import seed_everything
from bench.data.datasets import DatasetSpec, load_dataset
from bench.runner.pretrain import StrategyNotApplicable
from bench.tasks.autoregressive import layout


def test_each_role_needs_its_own_size() -> None:
    m = nn.Linear(2, 2)
    assert Part(m, "encoder", features=8).features == 8
    assert Part(m, "decoder", latent_dim=4).latent_dim == 4
    assert Part(m, "sequence", vocab=18).vocab == 18
    with pytest.raises(ValueError, match="needs latent_dim="):
        Part(m, "decoder")
    with pytest.raises(ValueError, match="takes features=, not vocab="):
        Part(m, "encoder", features=8, vocab=18)
    with pytest.raises(ValueError, match="needs vocab="):
        Part(m, "sequence", vocab=0)
    assert Part(m, "decoder", latent_dim=4, patch_size=2).patch_size == 2  # a transformer generator's patches
    with pytest.raises(ValueError, match="patch_size"):
        Part(m, "sequence", vocab=18, patch_size=2)
    with pytest.raises(ValueError, match="patch_size"):
        Part(m, "encoder", features=8, patch_size=0)


def test_dim_is_deprecated_but_still_understood() -> None:
    with pytest.warns(DeprecationWarning, match="takes latent_dim="):
        p = Part(nn.Linear(2, 2), "decoder", dim=16)
    assert p.latent_dim == 16 and p.features is None


def test_baselines_use_the_role_names() -> None:
    data = load_dataset(DatasetSpec("digits"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)  # no baseline passes dim=
        for key, cls in ADAPTERS.items():
            if not cls.__module__.startswith("baselines."):  # the bundled ones, not what other tests registered
                continue
            adapter = cls(cls.Config(), data.info, torch.device("cpu"))
            for name, part in adapter.parts().items():
                if part.role not in ROLE_SIZE:  # a denoiser has no size: it maps x_t (and t) to the image's shape
                    continue
                size = getattr(part, ROLE_SIZE[part.role])
                assert isinstance(size, int) and size > 0, (key, name, part.role)


@pytest.mark.parametrize("key,bins", [("lstm_seq", 0), ("transformer_seq", 0), ("lstm_seq", 5)])
def test_task_and_baseline_share_one_token_layout(key: str, bins: int) -> None:
    data = load_dataset(DatasetSpec("digits"))
    cls = ADAPTERS.get(key)
    seed_everything(0)
    adapter = cls(cls.Config(levels=bins), data.info, torch.device("cpu"))
    part = adapter.parts()["sequence"]
    task_tok = layout(part.vocab, data, torch.device("cpu"))
    u8 = data.test_x[:16]
    model_tokens = adapter.tok.encode(Batch(u8, data.test_y[:16], data.levels).tokens())  # as the model's train_step reads them
    assert torch.equal(task_tok.from_pixels(u8), model_tokens)
    assert torch.equal(task_tok.inputs(model_tokens), adapter.tok.inputs(model_tokens))
    assert (task_tok.start, task_tok.vocab, task_tok.length) == (adapter.tok.start, adapter.tok.vocab, adapter.tok.length)


def test_a_vocabulary_that_does_not_fit_is_not_applicable() -> None:
    data = load_dataset(DatasetSpec("digits"))
    with pytest.raises(StrategyNotApplicable, match="sequence vocabulary 40 does not fit 17 grey levels"):
        layout(40, data, torch.device("cpu"))
