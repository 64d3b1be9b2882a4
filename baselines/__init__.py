"""Bundled baselines. Importing this package registers every adapter in it (timm-style: one file each)."""

from baselines import cnn_gan, dummy, lstm_seq, transformer_gan, transformer_seq, vae  # noqa: F401
