"""lstm_seq: a pixel-level autoregressive LSTM over quantised pixel values, in raster order.

References:
- L. Theis and M. Bethge, "Generative Image Modeling Using Spatial LSTMs", NeurIPS 2015. https://arxiv.org/abs/1506.03478
- A. van den Oord, N. Kalchbrenner and K. Kavukcuoglu, "Pixel Recurrent Neural Networks", ICML 2016.
  https://arxiv.org/abs/1601.06759

A plain (row-flattened, not 2-D) LSTM reads the pixels one token at a time, channels interleaved per pixel
(r, g, b, r, g, b, ...), and predicts a categorical over the next token's grey-level bin. The tokenisation
is shared with transformer_seq (baselines/_tokens.py), so the two differ only in the sequence network.

- `levels` (Config): number of bins per channel; 0 = the data's levels (17 for digits, 256 for 8-bit data).
  Fewer bins than the data's levels coarsen the tokens; log P(x) then spreads a bin's mass uniformly over
  its levels, so bpd stays a bpd over the data's exact values (and sampling draws uniformly within a bin).
- log_likelihood is exact: the sum of next-token log-probabilities.
- sample() steps the LSTM one token at a time with (h, c) carried, all n images in parallel.
- Part "sequence": tokens (N, T) in 0..vocab-1 (vocab = bins + 1; the last is the start token) → next-token
  logits (N, T, vocab). Blocks: embedding, each LSTM layer, head.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from baselines._tokens import TokenSequenceAdapter, sample_tokens
from bench.adapter.base import DataInfo, Part, adam
from bench.adapter.tokens import PixelTokens


class LSTMSequence(nn.Module):
    """Token embedding (+ next-channel embedding) → stacked LSTM layers → linear head over the vocabulary."""

    def __init__(self, vocab: int, channels: int, emb: int, hidden: int, layers: int, dropout: float):
        super().__init__()
        self.channels = channels
        self.embed = nn.Embedding(vocab, emb)
        # With interleaved RGB the LSTM would otherwise have to count to know which colour comes next.
        self.channel_embed = nn.Embedding(channels, emb)
        self.lstms = nn.ModuleList([nn.LSTM(emb if i == 0 else hidden, hidden, batch_first=True) for i in range(layers)])
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, vocab)

    def _inputs(self, tokens: torch.Tensor, start: int) -> torch.Tensor:
        pos = torch.arange(start, start + tokens.shape[1], device=tokens.device) % self.channels
        return self.embed(tokens) + self.channel_embed(pos)

    def forward(self, tokens: torch.Tensor, state: list[Any] | None = None, start: int = 0) -> torch.Tensor:
        logits, _ = self.run(tokens, state, start)
        return logits

    def run(self, tokens: torch.Tensor, state: list[Any] | None = None, start: int = 0) -> tuple[torch.Tensor, list[Any]]:
        """Logits for `tokens` at positions start.., continuing from per-layer (h, c) `state`."""
        h = self._inputs(tokens, start)
        state = state or [None] * len(self.lstms)
        new_state = []
        for lstm, s in zip(self.lstms, state, strict=True):
            out, s_new = lstm(h, s)
            h = self.drop(out) + (h if h.shape[-1] == out.shape[-1] else 0)  # residual eases deep stacks
            new_state.append(s_new)
        return self.head(h), new_state


class LSTMSeq(TokenSequenceAdapter):
    family = "autoregressive"
    likelihood_exact = True

    @dataclass
    class Config:
        levels: int = 0  # bins per channel; 0 = the data's levels
        emb: int = 64
        hidden: int = 256
        layers: int = 2
        dropout: float = 0.0
        lr: float = 2e-3
        grad_clip: float = 1.0

    def __init__(self, config: Config, info: DataInfo, device: torch.device):
        super().__init__(config, info, device)
        self.tok = PixelTokens(info.channels, info.image_size, info.levels, config.levels, self.device)
        self.model = LSTMSequence(self.tok.vocab, info.channels, config.emb, config.hidden, config.layers, config.dropout).to(self.device)
        self.opt = adam(self.model.parameters(), lr=config.lr, device=self.device)

    def parts(self) -> dict[str, Part]:
        m = self.model
        return {"sequence": Part(m, "sequence", vocab=self.tok.vocab, blocks=[m.embed, *m.lstms, m.head])}

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        was_training = self.model.training
        self.model.eval()

        def step(prev: torch.Tensor, t: int, state: list[Any] | None) -> tuple[torch.Tensor, list[Any]]:
            logits, state = self.model.run(prev.unsqueeze(1), state, start=t)
            return logits[:, 0], state

        tokens = sample_tokens(step, None, n, self.tok, generator, self.device)
        self.model.train(was_training)
        return self.tok.decode(tokens, generator).to(self.device)
