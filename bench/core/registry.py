"""A tiny name → object registry, shared by adapters, data sets, metrics and pretraining tasks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from bench.core.errors import ConfigError, did_you_mean

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str, loader: Callable[[], None] | None = None):
        self.kind = kind
        self._items: dict[str, T] = {}
        self._loader = loader  # imports the built-in entries lazily, so `import bench` stays light
        self._loaded = False

    def _ensure_loaded(self) -> None:
        if not self._loaded and self._loader is not None:
            self._loaded = True  # first, so a loader that looks entries up does not recurse
            try:
                self._loader()
            except BaseException:
                self._loaded = False  # a failed load is retried (and fails loudly) rather than left half done
                raise

    def add(self, key: str, obj: T) -> T:
        if key in self._items and self._items[key] is not obj:
            raise ValueError(f"{self.kind} '{key}' is already registered (by {self._items[key]!r})")
        self._items[key] = obj
        return obj

    def register(self, key: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            return self.add(key, obj)

        return deco

    def get(self, key: str, *, where: str | None = None) -> T:
        self._ensure_loaded()
        if key not in self._items:
            raise ConfigError(f"unknown {self.kind} '{key}'", key=where, fix=did_you_mean(key, self._items))
        return self._items[key]

    def __contains__(self, key: str) -> bool:
        self._ensure_loaded()
        return key in self._items

    def keys(self) -> list[str]:
        self._ensure_loaded()
        return sorted(self._items)

    def items(self) -> Iterator[tuple[str, T]]:
        self._ensure_loaded()
        return iter(sorted(self._items.items()))
