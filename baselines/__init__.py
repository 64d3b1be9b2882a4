"""Bundled baselines. Importing this package registers every adapter in it (timm-style: one file each)."""

from baselines import dummy  # noqa: F401
from baselines import lstm_seq  # noqa: F401
from baselines import transformer_seq  # noqa: F401
from baselines import vae  # noqa: F401
from baselines import cnn_gan  # noqa: F401
from baselines import transformer_gan  # noqa: F401

