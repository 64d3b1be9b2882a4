"""autoencode: an encoder or decoder part plus a small generic partner, trained to reconstruct the source.

- Encoder part (image → features): the partner is an MLP decoder (features → pixels).
- Decoder part (latent → image): the partner is an MLP encoder (pixels → latent) ending in a batch norm
  without affine terms, so the codes the decoder learns from are roughly N(0, I), the prior a generator is
  later sampled from: a pretrained decoder initialises a generator (or a VAE decoder) on the right scale.
  A decoder whose output is not image-shaped (a VAE's per-pixel distribution parameters) gets a 1×1 conv
  readout to the image's channels; one that already emits the image (a generator) is trained on it directly.

`mask_ratio` > 0 corrupts the input (the loss always targets the clean image):
- encoders whose input is patches (the part declares `patch_size`, e.g. a ViT): masked image modelling, as MAE (He et al. 2022,
  https://arxiv.org/abs/2111.06377). Patches are masked at the input and the loss counts masked patches
  only. Tokens are zeroed rather than dropped, as SimMIM does (Xie et al. 2022,
  https://arxiv.org/abs/2111.09886), because a generic task cannot reach inside the adapter's token pipeline.
- decoders that emit patches (the part declares `patch_size`, e.g. a transformer generator): the decoder of
  a masked autoencoder. The partner encoder sees the image with `mask_ratio` of its patches zeroed, and the
  decoder must emit the whole image from the partner's code, inventing the hidden patches: generative
  pretraining of the generator's own modules (latent embedding, blocks, output head) through its own
  latent → image interface, so any adapter with such a decoder part gets it and every tensor loads with
  its shape. Chosen over next-token (Image-GPT) or masked-token prediction, which train a token → token
  model: a generator has no token input, so its embedding and head would stay untrained and only the middle
  blocks could transfer. The codes are batch-normalised (see above), close to the N(0, I) the GAN samples from.
- other encoders and decoders (CNNs; decoders through their partner encoder): denoising with masking noise, each pixel
  zeroed with probability `mask_ratio` (Vincent et al. 2008, https://doi.org/10.1145/1390156.1390294).

Evidence recorded: first and final training loss, reconstruction MSE on the source's test split, and for
encoder parts a linear probe on the source's labels before and after.
"""

from __future__ import annotations

import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bench.adapter.base import Batch
from bench.core.seeds import derive_seed
from bench.tasks.common import Context, as_input, encode_all, eval_mode, fit, linear_probe
from bench.tasks.strategy import StrategyNotApplicable
from bench.tasks.weights import part_tensors

ROLES = ("encoder", "decoder")
HIDDEN = 512


def corrupt(x: torch.Tensor, ratio: float, patch: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(corrupted x, mask) with mask 1 where the input was hidden; `patch` 1 masks single pixels."""
    n, _, h, w = x.shape
    gh, gw = -(-h // patch), -(-w // patch)
    keep = torch.rand(n, 1, gh, gw, generator=gen, device=x.device) >= ratio
    keep = keep.repeat_interleave(patch, 2).repeat_interleave(patch, 3)[..., :h, :w]
    mask = (~keep).to(x.dtype)
    return x * keep, mask


class MLPDecoder(nn.Module):
    def __init__(self, dim: int, shape: tuple[int, int, int]):
        super().__init__()
        self.shape = shape
        self.net = nn.Sequential(nn.Linear(dim, HIDDEN), nn.GELU(), nn.Linear(HIDDEN, shape[0] * shape[1] * shape[2]))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h.flatten(1)).view(-1, *self.shape)


class MLPEncoder(nn.Module):
    def __init__(self, shape: tuple[int, int, int], dim: int):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(shape[0] * shape[1] * shape[2], HIDDEN), nn.GELU(), nn.Linear(HIDDEN, dim))
        self.norm = nn.BatchNorm1d(dim, affine=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.net(x))


def _decoder_readout(module: nn.Module, dim: int, shape: tuple[int, int, int], device: torch.device) -> nn.Module:
    with torch.no_grad(), eval_mode(module):
        out = module(torch.zeros(2, dim, device=device))
    if out.ndim != 4 or tuple(out.shape[-2:]) != shape[1:]:
        raise StrategyNotApplicable(f"autoencode: decoder output {tuple(out.shape[1:])} is not an image of size {shape[1:]}")
    if out.shape[1] == shape[0]:
        return nn.Identity()
    return nn.Conv2d(out.shape[1], shape[0], 1).to(device)


def train(ctx: Context) -> tuple[dict, dict[str, Any], float]:
    parts = ctx.fresh.parts()
    shape = ctx.info.shape
    ratio = ctx.spec.mask_ratio
    gen = torch.Generator(device=ctx.device).manual_seed(derive_seed(ctx.seed, "mask"))
    info: dict[str, Any] = {}
    seconds = 0.0
    for name in ctx.parts:
        part = parts[name]
        module = part.module
        if part.role == "encoder":
            # The part says whether its input is patches (Part.patch_size): then MAE-style masking of patches.
            masked = ratio > 0 and part.patch_size is not None
            patch = part.patch_size if masked else 1
            info[f"{name}.objective"] = "masked" if masked else ("denoise" if ratio > 0 else "reconstruct")
            t = time.perf_counter()
            info[f"{name}.probe_accuracy_init"] = linear_probe(module, ctx.source)
            probe_s = time.perf_counter() - t
            feat = encode_all(module, ctx.source.train_x[:2]).shape[1]
            partner: nn.Module = MLPDecoder(feat, shape).to(ctx.device)

            def forward(x: torch.Tensor, module=module, partner=partner) -> torch.Tensor:
                return partner(module(x))
        else:
            # A decoder that emits patches becomes the decoder of a masked autoencoder: its partner sees the image
            # with whole patches hidden, so the decoder must generate the missing patches from a code.
            masked = ratio > 0 and part.patch_size is not None
            patch = part.patch_size if masked else 1
            info[f"{name}.objective"] = "mae_decoder" if masked else ("denoise" if ratio > 0 else "reconstruct")
            probe_s = 0.0
            enc = MLPEncoder(shape, part.latent_dim).to(ctx.device)
            readout = _decoder_readout(module, part.latent_dim, shape, ctx.device)
            partner = nn.ModuleList([enc, readout])

            def forward(x: torch.Tensor, module=module, enc=enc, readout=readout) -> torch.Tensor:
                return readout(module(enc(x)))

        def loss_fn(batch: Batch, step: int, forward=forward, masked=masked, patch=patch, part=part) -> torch.Tensor:
            x = batch.x
            if ratio <= 0:
                return F.mse_loss(forward(x).float(), x)
            xin, mask = corrupt(x, ratio, patch, gen)
            err = (forward(xin).float() - x).pow(2)
            if masked and part.role == "encoder":  # MAE: only the hidden patches count
                return (err * mask).sum() / (mask.sum() * x.shape[1]).clamp_min(1.0)
            # A decoder emits the whole image, as a generator does: every pixel counts.
            return err.mean()

        res = fit(ctx, [*module.parameters(), *partner.parameters()], loss_fn, f"pretrain autoencode {name}")
        seconds += res.seconds
        t = time.perf_counter()
        with torch.no_grad(), eval_mode(module), eval_mode(partner):
            xt = as_input(ctx.source.test_x[:2000])
            info[f"{name}.test_mse"] = float(F.mse_loss(forward(xt).float(), xt))
        info.update({f"{name}.loss_first": res.loss_first, f"{name}.loss_final": res.loss_final})
        if part.role == "encoder":
            info[f"{name}.probe_accuracy"] = linear_probe(module, ctx.source)
        info["probe_seconds"] = info.get("probe_seconds", 0.0) + probe_s + time.perf_counter() - t
    return part_tensors(ctx.fresh, ctx.parts), info, seconds
