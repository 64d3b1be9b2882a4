"""The adapter API: the one thing a contributor learns.

An adapter owns its networks and its optimisation step; the harness owns the loop, the budget, seeding,
the device, timing, evaluation, files and reports. An adapter never writes a file or computes FID.

    @register_adapter("my_gan")
    class MyGAN(Adapter):
        family = "gan"

        @dataclass
        class Config:
            width: int = 64

        def __init__(self, config, info, device): ...
        def parts(self): return {"generator": Part(self.G, "decoder", latent_dim=self.z_dim), ...}
        def train_step(self, batch, step): ...   # -> {"loss_d": tensor, "loss_g": tensor}
        def sample(self, n, generator): ...      # -> uint8 N×C×H×W
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar, Literal

import torch
from torch import nn

from bench.adapter.batch import Batch, BatchSource, DataInfo, to_uint8  # noqa: F401  (the adapter API, re-exported)
from bench.adapter.tokens import from_levels, to_levels  # noqa: F401  (pixel levels: part of the adapter API, bench.from_levels)
from bench.core import interrupt
from bench.core.errors import ConfigError
from bench.core.registry import Registry

Role = Literal["encoder", "decoder", "sequence", "denoiser"]
ROLES: tuple[str, ...] = ("encoder", "decoder", "sequence", "denoiser")
# `stylize`: a conditional family (content batch, style batch) -> images; it implements `stylize`, not `sample`.
FAMILIES: tuple[str, ...] = ("gan", "vae", "autoregressive", "flow", "diffusion", "stylize", "other")
CONDITIONAL_FAMILIES: tuple[str, ...] = ("stylize",)


# The size each role must declare: what a generic pretraining partner needs to fit the part.
# A denoiser maps an image to an image of the same shape: it has no size to declare.
ROLE_SIZE: dict[str, str] = {"encoder": "features", "decoder": "latent_dim", "sequence": "vocab"}


@dataclass
class Part:
    """A network piece that pretraining can initialise, with its sizes named by role.

    role and size, and what `module` takes and returns (bench.adapter.contract checks it on a tiny batch):
    - `encoder`, `features`: module(x: float N×C×H×W in [-1, 1], as Batch.x) → N×features.
    - `decoder`, `latent_dim`: module(z: float N×latent_dim) → image batch N×C'×H×W of the data's H, W.
    - `sequence`, `vocab`: module(tokens: int64 N×T) → logits N×T×vocab. T = C·H·W, raster order with the
      channels interleaved per pixel; the input is the start token (id vocab-1) then the targets shifted
      right by one; vocab = levels + 1, or fewer grey-level bins + 1 (bench.adapter.tokens.PixelTokens).
    - `denoiser`, no size: module(x_t: float N×C×H×W, t: float N in [0, 1]) → the predicted noise ε, N×C×H×W.
      The time convention: t = 0 is data, t = 1 pure noise (step i of T discrete steps is t = i / T; a model
      built on integer steps converts, round(t·T)); x_t = sqrt(ᾱ(t))·x_0 + sqrt(1 - ᾱ(t))·ε with x_0 in [-1, 1]
      (Batch.x) and ε ~ N(0, I). `alpha_bar`: the part's schedule t → ᾱ(t) (a tensor function), which generic
      tasks (denoise) noise with; None means the cosine schedule of Nichol & Dhariwal 2021.
    blocks: the part's blocks in input-to-output order; `freeze: {part: N}` freezes the first N.
    patch_size: for an encoder whose input is cut into patches (a ViT), or a decoder that emits its image patch
    by patch (a transformer generator): masked autoencoding hides whole patches of this size. None (a CNN):
    it is trained as a denoising autoencoder on single pixels.
    """

    module: nn.Module
    role: Role
    features: int | None = None
    latent_dim: int | None = None
    vocab: int | None = None
    blocks: list[nn.Module] = field(default_factory=list)
    patch_size: int | None = None
    alpha_bar: Callable[[torch.Tensor], torch.Tensor] | None = None  # a denoiser's schedule ᾱ(t)
    dim: dataclasses.InitVar[int | None] = None  # deprecated: the role's size under its old, shared name

    def __post_init__(self, dim: int | None) -> None:
        if self.role not in ROLES:
            raise ValueError(f"Part role must be one of {', '.join(ROLES)}, got {self.role!r}")
        if self.alpha_bar is not None and (self.role != "denoiser" or not callable(self.alpha_bar)):
            raise ValueError(f"alpha_bar= (a function t -> ᾱ(t)) belongs on a denoiser part, got {self.alpha_bar!r} on a {self.role} part")
        if self.role == "denoiser":
            given = [n for n in ROLE_SIZE.values() if getattr(self, n) is not None]
            if given or dim is not None:
                raise ValueError(f"a denoiser part takes no size (it maps an image to an image), got {', '.join(given) or 'dim'}=")
            if self.patch_size is not None:
                raise ValueError(
                    f"patch_size must be a positive int on an encoder or decoder part, got {self.patch_size!r} on a denoiser part"
                )
            return
        size = ROLE_SIZE[self.role]
        if dim is not None:
            warnings.warn(f"Part(dim=...) is deprecated: a {self.role} part takes {size}=", DeprecationWarning, stacklevel=3)
            if getattr(self, size) is None:
                setattr(self, size, dim)
        for name in ROLE_SIZE.values():
            value = getattr(self, name)
            if name != size and value is not None:
                raise ValueError(f"a {self.role} part takes {size}=, not {name}= (that names a {_role_of(name)} part's size)")
        value = getattr(self, size)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"a {self.role} part needs {size}= (a positive int), got {value!r}")
        if self.patch_size is not None and (self.role == "sequence" or not isinstance(self.patch_size, int) or self.patch_size < 1):
            raise ValueError(
                f"patch_size must be a positive int on an encoder or decoder part, got {self.patch_size!r} on a {self.role} part"
            )


def _role_of(size: str) -> str:
    return next(r for r, s in ROLE_SIZE.items() if s == size)


class Adapter:
    """Base class for a model under benchmark. Subclass, set `family` and `Config`, register.

    family: one of FAMILIES, set on the class (bench.adapter.contract refuses a class that leaves it unset).
    train_step(batch, step) → {name: 0-dim float tensor}, never Python floats (they sync every step).
    sample(n, generator) → uint8 n×C×H×W, 0..255 on the data's `levels` grid (bench.to_uint8).
    log_likelihood(batch) → None, or float (N,) log p(x) in nats, ≤ 0.
    parts() → {name: Part}; see Part for each role's module contract, and bench.adapter.batch for Batch and DataInfo.
    """

    key: ClassVar[str] = ""
    family: ClassVar[str] = "other"
    Config: ClassVar[type] = dataclass(type("Config", (), {}))
    # True when log_likelihood is exact; False when it is a bound (reported beside bpd).
    likelihood_exact: ClassVar[bool] = True

    def __init__(self, config: Any, info: DataInfo, device: torch.device):
        self.config, self.info, self.device = config, info, torch.device(device)

    # --- what every adapter implements ---------------------------------------------------------
    def parts(self) -> dict[str, Part]:
        return {}

    def train_step(self, batch: Batch, step: int) -> dict[str, torch.Tensor]:
        raise NotImplementedError(f"{type(self).__name__} must implement train_step(batch, step) -> dict of losses")

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement sample(n, generator) -> uint8 N×C×H×W")

    def stylize(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        """family `stylize` only: float N×C×H×W content and style images in [-1, 1] (as Batch.x) → uint8
        N×C×H×W images on the data's `levels` grid that keep the content's structure and take the style's
        statistics. Its `train_step` gets `batch.style`, a Batch of style images drawn beside the content batch."""
        raise NotImplementedError(f"{type(self).__name__} must implement stylize(content, style) -> uint8 N×C×H×W")

    def log_likelihood(self, batch: Batch) -> torch.Tensor | None:
        """Per-example log p(x) in nats over the discrete pixel values, or None if the model has none."""
        return None

    # --- sensible defaults -----------------------------------------------------------------------
    def modules(self) -> dict[str, nn.Module]:
        return {k: v for k, v in vars(self).items() if isinstance(v, nn.Module)}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {k: v for k, v in vars(self).items() if isinstance(v, torch.optim.Optimizer)}

    def train(self, mode: bool = True) -> None:
        for m in self.modules().values():
            m.train(mode)

    def state_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {f"module.{k}": m.state_dict() for k, m in self.modules().items()}
        out.update({f"optim.{k}": o.state_dict() for k, o in self.optimizers().items()})
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for k, m in self.modules().items():
            m.load_state_dict(state[f"module.{k}"])
        for k, o in self.optimizers().items():
            o.load_state_dict(state[f"optim.{k}"])

    def num_params(self) -> int:
        seen: set[int] = set()
        total = 0
        for m in self.modules().values():
            for p in m.parameters():
                if id(p) not in seen:
                    seen.add(id(p))
                    total += p.numel()
        return total


# --- registry ------------------------------------------------------------------------------------
def _load_builtin() -> None:
    """Register every `bench.adapters` entry point: the bundled baselines (this project's pyproject.toml)
    and any installed plugin alike, as lm-eval lists its models. The core never names a package of adapters."""
    for ep in entry_points(group="bench.adapters"):
        where = f"entry point bench.adapters:{ep.name} ({ep.value})"
        try:
            cls = ep.load()
        except BaseException as err:  # a plugin's import may raise anything, exit included; say which one
            if interrupt.passes(err):
                raise
            raise ConfigError(f"cannot load adapter: {type(err).__name__}: {err}", key=where, fix="fix or uninstall that package") from None
        try:
            check_adapter_class(cls)
        except TypeError as err:
            raise ConfigError(str(err), key=where, fix="point the entry point at a bench.Adapter subclass") from None
        if ep.name not in ADAPTERS._items:  # a module may have registered itself on import (@register_adapter)
            _register(ep.name, cls)


def _register(key: str, cls: type[Adapter]) -> type[Adapter]:
    # The one place `cls.key` is set: at registration, and only if the class has none yet (a class
    # registered under a second name keeps its first). Lookups never touch it.
    ADAPTERS.add(key, cls)
    if not cls.key:
        cls.key = key
    return cls


ADAPTERS: Registry[type[Adapter]] = Registry("adapter", _load_builtin)


def register_adapter(key: str):
    """Class decorator: `@register_adapter("cnn_gan")`. A duplicate key is an error."""

    def deco(cls: type[Adapter]) -> type[Adapter]:
        check_adapter_class(cls)
        ADAPTERS.add(key, cls)
        cls.key = key
        return cls

    return deco


def check_adapter_class(cls: type) -> None:
    """Fail early, with the contract spelled out, when a class cannot be an adapter."""
    if not (isinstance(cls, type) and issubclass(cls, Adapter)):
        raise TypeError(f"{cls!r} must subclass bench.Adapter")
    if not dataclasses.is_dataclass(cls.Config):
        raise TypeError(f"{cls.__name__}.Config must be a @dataclass (the suite's adapter block is validated against it)")
    # A conditional (stylize) adapter answers `stylize(content, style)` in place of `sample(n, generator)`.
    for meth in ("train_step", "stylize" if getattr(cls, "family", None) in CONDITIONAL_FAMILIES else "sample"):
        if getattr(cls, meth) is getattr(Adapter, meth):
            raise TypeError(f"{cls.__name__} must implement {meth}() (see bench.Adapter)")
    if cls.family not in FAMILIES:
        raise TypeError(f"{cls.__name__}.family must be one of {FAMILIES}, got {cls.family!r}")


def get_adapter(key: str, *, where: str | None = None, search: tuple[str | Path, ...] = ()) -> type[Adapter]:
    """Look up a registry key, or import `module.path:ClassName` (registering it under that name, once).

    The module is looked for in `search` (the suite file's folder), then the working directory, then
    `sys.path`, so a `my_adapters.py` next to the suite needs no PYTHONPATH."""
    if ":" not in key or key in ADAPTERS:
        return ADAPTERS.get(key, where=where)
    mod_name, _, cls_name = key.partition(":")
    try:
        mod = import_from(mod_name, search)
    except ImportError as err:
        folders = ", ".join(str(Path(f)) for f in (*search, ".")) or "."
        raise ConfigError(
            f"cannot import adapter module '{mod_name}' ({err}); looked in {folders} and sys.path",
            key=where,
            fix=f"place {mod_name.split('.')[0]}.py next to the suite file, or install the module",
        ) from None
    cls = getattr(mod, cls_name, None)
    if cls is None:
        raise ConfigError(f"module '{mod_name}' has no class '{cls_name}'", key=where, fix="check the class name")
    try:
        check_adapter_class(cls)
    except TypeError as err:
        raise ConfigError(str(err), key=where) from None
    return _register(key, cls)


def import_from(mod_name: str, search: tuple[str | Path, ...] = ()) -> ModuleType:
    """Import `mod_name` looking first in `search`, then the working directory, then `sys.path`.

    The folders go on the front of sys.path only while this import runs and are taken off afterwards:
    a user's folder never stays there to shadow an installed package of the same name later. The module
    stays in sys.modules (so the class keeps working); imports it makes lazily, later, see sys.path only."""
    if mod_name in sys.modules:
        return sys.modules[mod_name]
    folders = [str(Path(f).resolve()) for f in (*search, Path.cwd())]
    added = [f for f in dict.fromkeys(folders)]
    importlib.invalidate_caches()  # the file may have been written just now (bench new adapter)
    sys.path[:0] = added
    try:
        return importlib.import_module(mod_name)
    finally:
        for f in added:  # remove our entries only (the import may have added its own)
            if f in sys.path:
                sys.path.remove(f)


def validate_sample(x: Any, n: int, info: DataInfo, name: str) -> torch.Tensor:
    """Check a sample() result against the contract, with a message that says what is expected."""
    want = (n, *info.shape)
    if not isinstance(x, torch.Tensor) or x.dtype != torch.uint8 or tuple(x.shape) != want:
        got = f"{x.dtype} {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise TypeError(f"{name}.sample({n}) must return a uint8 tensor of shape {want}, got {got}")
    return x


def validate_log_likelihood(ll: Any, n: int, name: str) -> torch.Tensor | None:
    if ll is None:
        return None
    if not isinstance(ll, torch.Tensor) or tuple(ll.shape) != (n,):
        got = tuple(ll.shape) if isinstance(ll, torch.Tensor) else type(ll).__name__
        raise TypeError(f"{name}.log_likelihood(batch) must return a float tensor of shape ({n},) in nats, got {got}")
    if not torch.isfinite(ll).all():
        raise ValueError(f"{name}.log_likelihood(batch) returned non-finite values; it must be finite log p(x) in nats")
    if (ll > 1e-4).any():
        raise ValueError(f"{name}.log_likelihood(batch) returned log p(x) > 0; discrete likelihoods are <= 0 nats")
    return ll


class HarnessAdam(torch.optim.Adam):
    """Adam built by `bench.adam`: its kernel (`fused`) is the harness's to choose, from the suite's
    `runner.fused_optim`, when the runner builds the adapter. The subclass only marks that; the maths is torch's."""


class HarnessAdamW(torch.optim.AdamW):
    """AdamW built by `bench.adam` (weight decay given); see HarnessAdam."""


def adam(
    params, lr: float, betas: tuple[float, float] = (0.9, 0.999), weight_decay: float = 0.0, device: torch.device | str | None = None
) -> torch.optim.Optimizer:
    """Adam(W) as every baseline should build it. The harness then picks its kernel for the run's device
    (fused: one pass over all parameters per step, not a loop of small ops per tensor), so an adapter never
    knows about speed switches. `device` is accepted for adapters written before that; it changes nothing."""
    params = (
        [p for p in params if p.requires_grad] if not isinstance(params, list) or not params or not isinstance(params[0], dict) else params
    )
    cls = HarnessAdamW if weight_decay else HarnessAdam
    return cls(params, lr=lr, betas=betas, weight_decay=weight_decay)


def set_fused_optim(adapter: Adapter, fused: bool) -> None:
    """Choose the kernel of every optimiser the adapter built with `bench.adam`, on or off.

    It mirrors what torch's `Adam.__init__(fused=...)` records (torch/optim/adam.py): the group's and the
    defaults' `fused` flag, and `_step_supports_amp_scaling`. Off is `None`, torch's own default, which is
    what `bench.adam` gave when the switch was off. The state is created lazily at the first step from the
    group's flag, so setting it before training equals passing it to the constructor. After a checkpoint is
    loaded its `step` counters are put where the fused kernel reads them (float32 on the parameter's
    device), as `Optimizer.load_state_dict` does for groups saved fused. An optimiser an adapter built
    itself (the dummy's plain Adam) keeps the adapter's choice: changing it would change its numbers."""
    flag = True if fused else None
    for opt in adapter.optimizers().values():
        if not isinstance(opt, (HarnessAdam, HarnessAdamW)):
            continue
        opt.defaults["fused"] = flag
        opt._step_supports_amp_scaling = fused  # read by GradScaler; Adam.__init__ sets it for fused
        for group in opt.param_groups:
            group["fused"] = flag
            if not fused:
                continue
            for p in group["params"]:
                st = opt.state.get(p)
                if st and isinstance(st.get("step"), torch.Tensor):
                    st["step"] = st["step"].to(dtype=torch.float32, device=p.device)


def bits_per_dim(ll_nats: torch.Tensor, dims: int) -> float:
    return float(-ll_nats.double().mean() / (dims * math.log(2.0)))
