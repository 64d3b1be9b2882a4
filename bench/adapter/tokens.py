"""The pixel token layout shared by the sequence baselines (lstm_seq, transformer_seq) and the
autoregressive pretraining task, so a checkpoint pretrained by the task means the same to the model.

Pixels ⇄ levels: a uint8 pixel maps to one of the data's `levels` grey values (17 for digits, 256 for 8-bit
data), and back.

Levels ⇄ tokens: an image becomes a sequence of T = C·H·W tokens in raster order with the channels
interleaved per pixel (r, g, b, r, g, b, ...), as in PixelRNN (van den Oord et al. 2016) and Image GPT
(Chen et al. 2020). A token is a *bin* of grey levels: with `bins` equal to the data's levels (the default)
it is the level index itself; with fewer bins, neighbouring levels share a bin and the model spreads a bin's
probability uniformly over the levels in it, so log P(x) is still a mass over the data's exact discrete values.

The sequence part sees a vocabulary of `bins + 1` tokens: the extra one, the last id, is a start token fed at
position 0 (inputs are the targets shifted right by one), so the first pixel is predicted too. The start
token is never a target; its logit is dropped before the softmax in the likelihood, the loss and the sampler.

A leaf: it imports torch and nothing of bench.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def to_levels(u8: torch.Tensor, levels: int) -> torch.Tensor:
    """uint8 pixels → level index in 0..levels-1 (the inverse of `from_levels`)."""
    if levels == 256:
        return u8.long()
    return torch.round(u8.float() * ((levels - 1) / 255.0)).long()


def from_levels(idx: torch.Tensor, levels: int) -> torch.Tensor:
    """Level index → uint8 pixels on the 0..255 scale."""
    if levels == 256:
        return idx.to(torch.uint8)
    return torch.round(idx.float() * (255.0 / (levels - 1))).clamp_(0, 255).to(torch.uint8)


class PixelTokens:
    """Image ⇄ token sequence, bins ⇄ levels, and log P(x) from next-token logits."""

    def __init__(self, channels: int, image_size: int, levels: int, bins: int = 0, device: torch.device | str = "cpu"):
        bins = bins or levels
        if not 2 <= bins <= levels:
            raise ValueError(f"levels (bins) must be between 2 and the data's {levels} levels, got {bins}")
        self.channels, self.size, self.levels, self.bins = channels, image_size, levels, bins
        self.length = channels * image_size * image_size
        self.vocab = bins + 1
        self.start = bins
        # level → bin: equal-width bins over the level index (exactly the identity when bins == levels).
        # The lookup tables live on the run's device: no host-to-device copy in the training step.
        self.level_to_bin = torch.arange(levels, device=device) * bins // levels
        size = torch.bincount(self.level_to_bin, minlength=bins)
        self.bin_first = torch.cumsum(size, 0) - size  # lowest level in each bin
        self.bin_size = size
        self.log_bin_size = size.double().log()

    @classmethod
    def for_vocab(cls, vocab: int, channels: int, image_size: int, levels: int, device: torch.device | str = "cpu") -> PixelTokens:
        """The layout of a sequence part whose vocabulary is `vocab` (= bins + 1, the start token included)."""
        if not 2 <= vocab - 1 <= levels:
            raise ValueError(f"sequence vocabulary {vocab} does not fit {levels} grey levels (+1 start token)")
        return cls(channels, image_size, levels, bins=vocab - 1, device=device)

    # --- image ⇄ sequence ------------------------------------------------------------------------
    def encode(self, levels_idx: torch.Tensor) -> torch.Tensor:
        """Level indices N×C×H×W → bin tokens N×T, raster order, channels interleaved per pixel."""
        n = levels_idx.shape[0]
        seq = levels_idx.permute(0, 2, 3, 1).reshape(n, self.length)
        return self.level_to_bin.to(seq.device)[seq]

    def inputs(self, tokens: torch.Tensor) -> torch.Tensor:
        """Teacher-forcing inputs: the start token, then all tokens but the last (N×T)."""
        start = torch.full_like(tokens[:, :1], self.start)
        return torch.cat([start, tokens[:, :-1]], dim=1)

    def from_pixels(self, u8: torch.Tensor) -> torch.Tensor:
        """uint8 pixels N×C×H×W → bin tokens N×T (level indices first, then `encode`)."""
        return self.encode(to_levels(u8, self.levels))

    def decode(self, tokens: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Bin tokens N×T → uint8 N×C×H×W. A level is drawn uniformly within its bin (the model's own law)."""
        n = tokens.shape[0]
        first = self.bin_first.to(tokens.device)[tokens]
        if self.bins < self.levels:
            assert generator is not None, "decoding coarse bins draws a level within each bin: pass a generator"
            size = self.bin_size.to(generator.device)[tokens.to(generator.device)]
            u = torch.rand(size.shape, generator=generator, device=generator.device)
            first = first + (u * size).long().clamp_max(size - 1).to(tokens.device)
        img = first.reshape(n, self.size, self.size, self.channels).permute(0, 3, 1, 2)
        return from_levels(img.contiguous(), self.levels)

    def positions_channel(self, length: int, device: torch.device) -> torch.Tensor:
        """Which channel each target position holds (0..C-1): tells a model which colour comes next."""
        return torch.arange(length, device=device) % self.channels

    # --- likelihood ------------------------------------------------------------------------------
    def log_probs(self, logits: torch.Tensor) -> torch.Tensor:
        """Next-token logits (N, T, vocab) → float32 log-probabilities over the bins (start token dropped)."""
        return F.log_softmax(logits[..., : self.bins].float(), dim=-1)

    def token_log_probs(self, logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Per-token log P(bin_t | bins_<t) in nats, N×T."""
        return self.log_probs(logits).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)

    def log_likelihood(self, logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Per-example log P(x) in nats over the data's discrete levels: bins, then uniform within a bin."""
        ll = self.token_log_probs(logits, tokens).double().sum(1)
        if self.bins < self.levels:
            ll = ll - self.log_bin_size.to(tokens.device)[tokens].sum(1)
        return ll.float()

    def loss(self, logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Cross-entropy in nats per token (the training objective), computed in float32."""
        return F.cross_entropy(logits[..., : self.bins].float().flatten(0, 1), tokens.flatten())
