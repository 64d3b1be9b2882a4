"""transformer_seq: an Image-GPT-style causal transformer over pixel tokens, in raster order.

References:
- M. Chen, A. Radford, R. Child, J. Wu, H. Jun, D. Luan and I. Sutskever, "Generative Pretraining from Pixels",
  ICML 2020. https://cdn.openai.com/papers/Generative_Pretraining_from_Pixels_V2.pdf
- A. Vaswani et al., "Attention Is All You Need", NeurIPS 2017. https://arxiv.org/abs/1706.03762
- A. Radford et al., "Language Models are Unsupervised Multitask Learners" (GPT-2, pre-LN blocks), 2019.

The tokens are exactly those of lstm_seq (baselines/_tokens.py: raster order, channels interleaved per
pixel, a start token, optional coarser bins with mass spread uniformly within a bin), so the two sequence
baselines differ only in the network. Unlike iGPT we keep the data's own levels rather than a 9-bit colour
palette, so that bpd is over the data's exact discrete values.

- log_likelihood is exact: the sum of next-token log-probabilities.
- sample() uses a key/value cache: each new token attends to cached keys and values, so an image costs
  T single-token steps (T = 3072 for 32×32×3) instead of T full forward passes.
- Part "sequence": tokens (N, T) in 0..vocab-1 (vocab = bins + 1; the last is the start token) → next-token
  logits (N, T, vocab). Blocks: embedding (token + position), each transformer block, head (final norm + linear).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from baselines._tokens import TokenSequenceAdapter, sample_tokens
from bench.adapter.base import DataInfo, Part, adam
from bench.adapter.tokens import PixelTokens

KVCache = list[list[torch.Tensor | None]]  # per block: [keys, values], each N×heads×T×head_dim, filled up to the step


class Embedding(nn.Module):
    def __init__(self, vocab: int, length: int, dim: int):
        super().__init__()
        self.tok = nn.Embedding(vocab, dim)
        self.pos = nn.Parameter(torch.zeros(length, dim))
        nn.init.normal_(self.pos, std=0.02)

    def forward(self, tokens: torch.Tensor, start: int = 0) -> torch.Tensor:
        return self.tok(tokens) + self.pos[start : start + tokens.shape[1]]


class Block(nn.Module):
    """Pre-LN transformer block: causal self-attention and an MLP, each with a residual."""

    def __init__(self, dim: int, heads: int, length: int, mlp_ratio: float, dropout: float):
        super().__init__()
        self.heads, self.length = heads, length
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, int(dim * mlp_ratio)), nn.GELU(), nn.Linear(int(dim * mlp_ratio), dim))
        self.drop = nn.Dropout(dropout)
        self.dropout = dropout

    def forward(self, x: torch.Tensor, cache: list[torch.Tensor | None] | None = None, start: int = 0) -> torch.Tensor:
        n, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(n, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        if cache is None:
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0)
        else:
            # Write this step's keys/values into the cache, attend over everything so far. The cache is
            # allocated on first use so it takes k's dtype (bf16 under autocast, float32 otherwise).
            if cache[0] is None:
                cache[0] = k.new_zeros(n, self.heads, self.length, d // self.heads)
                cache[1] = torch.zeros_like(cache[0])
            cache[0][:, :, start : start + t] = k
            cache[1][:, :, start : start + t] = v
            keys, values = cache[0][:, :, : start + t], cache[1][:, :, : start + t]
            # One new token may see all cached positions; several new tokens need the causal offset mask.
            mask = None if t == 1 else torch.ones(t, start + t, dtype=torch.bool, device=x.device).tril(start)
            a = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask)
        x = x + self.drop(self.proj(a.transpose(1, 2).reshape(n, t, d)))
        return x + self.drop(self.mlp(self.ln2(x)))


class Head(nn.Module):
    def __init__(self, dim: int, vocab: int):
        super().__init__()
        self.ln, self.out = nn.LayerNorm(dim), nn.Linear(dim, vocab)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.ln(x))


class GPT(nn.Module):
    def __init__(self, vocab: int, length: int, dim: int, depth: int, heads: int, mlp_ratio: float, dropout: float):
        super().__init__()
        self.dim, self.heads, self.length = dim, heads, length
        self.embed = Embedding(vocab, length, dim)
        self.blocks = nn.ModuleList([Block(dim, heads, length, mlp_ratio, dropout) for _ in range(depth)])
        self.head = Head(dim, vocab)
        self.apply(self._init)

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)

    def forward(self, tokens: torch.Tensor, cache: KVCache | None = None, start: int = 0) -> torch.Tensor:
        x = self.embed(tokens, start)
        for i, block in enumerate(self.blocks):
            x = block(x, None if cache is None else cache[i], start)
        return self.head(x)

    def new_cache(self) -> KVCache:
        return [[None, None] for _ in self.blocks]


class TransformerSeq(TokenSequenceAdapter):
    family = "autoregressive"
    likelihood_exact = True

    @dataclass
    class Config:
        levels: int = 0  # bins per channel; 0 = the data's levels
        dim: int = 128
        depth: int = 4
        heads: int = 4
        mlp_ratio: float = 4.0
        dropout: float = 0.0
        lr: float = 1e-3
        weight_decay: float = 0.01
        warmup: int = 100  # linear lr warm-up steps: transformers are touchy early on
        grad_clip: float = 1.0

    def __init__(self, config: Config, info: DataInfo, device: torch.device):
        super().__init__(config, info, device)
        if config.dim % config.heads:
            raise ValueError(f"dim ({config.dim}) must be divisible by heads ({config.heads})")
        self.tok = PixelTokens(info.channels, info.image_size, info.levels, config.levels, self.device)
        self.model = GPT(self.tok.vocab, self.tok.length, config.dim, config.depth, config.heads, config.mlp_ratio, config.dropout).to(
            self.device
        )
        self.opt = adam(self.model.parameters(), lr=config.lr, betas=(0.9, 0.95), weight_decay=config.weight_decay, device=self.device)

    def parts(self) -> dict[str, Part]:
        m = self.model
        return {"sequence": Part(m, "sequence", vocab=self.tok.vocab, blocks=[m.embed, *m.blocks, m.head])}

    def before_step(self, step: int) -> None:
        lr = self.config.lr * min(1.0, (step + 1) / max(1, self.config.warmup))  # linear warm-up, as iGPT
        for g in self.opt.param_groups:
            g["lr"] = lr

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        was_training = self.model.training
        self.model.eval()
        cache = self.model.new_cache()

        def step(prev: torch.Tensor, t: int, state: KVCache) -> tuple[torch.Tensor, KVCache]:
            return self.model(prev.unsqueeze(1), state, start=t)[:, 0], state

        tokens = sample_tokens(step, cache, n, self.tok, generator, self.device)
        self.model.train(was_training)
        return self.tok.decode(tokens, generator).to(self.device)
