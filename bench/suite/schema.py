"""Validate plain dicts (from YAML) against dataclasses, with errors that name the key path.

Used for the suite schema and for every adapter's `Config`, so both get the same precise messages:
unknown keys get a did-you-mean, wrong types say what was expected. No third-party schema library is
needed for this, and the messages stay under our control.
"""

from __future__ import annotations

import dataclasses
import math
import types
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

from bench.core.errors import ConfigError, did_you_mean, show

T = TypeVar("T")


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp))
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin in (list, tuple):
        (inner, *_) = get_args(tp) or (Any,)
        return f"a list of {_type_name(inner)}"
    if origin is dict:
        return "a mapping"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    if tp is type(None):
        return "null"
    if tp is Any:
        return "any value"
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(tp, str(tp))


def _show(value: Any, limit: int = 60) -> str:
    """A value as the message shows it: a bounded repr, so one bad value never floods (or exhausts) anything."""
    return show(value, limit)


def _fits_shape(value: Any, tp: Any) -> bool:
    """Whether `value` has the outer shape of `tp` (a mapping for a dataclass or dict, a list for a list)."""
    origin = get_origin(tp)
    if dataclasses.is_dataclass(tp) or origin is dict:
        return isinstance(value, dict)
    if origin in (list, tuple):
        return isinstance(value, list)
    return False


def _coerce(value: Any, tp: Any, key: str) -> Any:
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError as err:
                errors.append(err)
        if len(errors) == 1:
            raise errors[0]
        shaped = [e for e, a in zip(errors, (a for a in args if a is not type(None)), strict=True) if _fits_shape(value, a)]
        if len(shaped) == 1:  # e.g. a mapping given for `list | SomeDataclass`: the dataclass's own message
            raise shaped[0]
        raise ConfigError(f"expected {_type_name(tp)}, got {_show(value)}", key=key)
    if origin is Literal:
        choices = get_args(tp)
        if value not in choices:
            hint = did_you_mean(value[:60] if isinstance(value, str) else _show(value), [str(c) for c in choices])
            raise ConfigError(f"expected {_type_name(tp)}, got {_show(value)}", key=key, fix=hint)
        return value
    if origin in (list, tuple):
        if not isinstance(value, list):
            raise ConfigError(f"expected {_type_name(tp)}, got {_show(value)}", key=key)
        (inner, *_) = get_args(tp) or (Any,)
        return [_coerce(v, inner, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"expected a mapping, got {_show(value)}", key=key)
        kt, vt = get_args(tp) or (Any, Any)
        out = {}
        for k, v in value.items():
            if kt is str and not isinstance(k, str):
                raise ConfigError(f"keys must be strings, got {_show(k)}", key=key)
            out[k] = _coerce(v, vt, f"{key}.{k}")
        return out
    if dataclasses.is_dataclass(tp):
        return parse(tp, value, key)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"expected true or false, got {_show(value)}", key=key)
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"expected an integer, got {_show(value)}", key=key)
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"expected a number, got {_show(value)}", key=key)
        try:
            number = float(value)
        except OverflowError:  # an integer literal too large for a float
            raise ConfigError(f"number too large: {_show(value)}", key=key) from None
        if not math.isfinite(number):  # .nan/.inf would pass here and then break result.json (strict JSON)
            raise ConfigError(f"expected a finite number, got {_show(value)}", key=key, fix="NaN and infinity are not allowed")
        return number
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"expected a string, got {_show(value)}", key=key)
        return value
    raise TypeError(f"schema type {tp!r} is not supported")  # a bug in a Config, not user input


def parse(cls: type[T], data: Any, key: str = "") -> T:
    """Build dataclass `cls` from `data`, checking keys and types; `key` is the path for messages."""
    where = key or "top level"
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"expected a mapping, got {_show(data)}", key=where)
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs = {}
    for name, value in data.items():
        sub = f"{key}.{name}" if key else str(name)
        if name not in fields:
            raise ConfigError(f"unknown key '{name}'", key=sub, fix=did_you_mean(str(name), fields))
        kwargs[name] = _coerce(value, hints[name], sub)
    for name, f in fields.items():
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if required and name not in kwargs:
            sub = f"{key}.{name}" if key else name
            raise ConfigError(f"missing required key '{name}'", key=sub, fix=f"add {name}: <{_type_name(hints[name])}>")
    try:
        obj = cls(**kwargs)
    except (ValueError, TypeError, ArithmeticError) as err:  # __post_init__ checks raise ValueError with the reason
        raise ConfigError(str(err), key=where) from None
    return obj


def to_dict(obj: Any) -> Any:
    """Dataclass → plain dict (JSON/YAML-safe), recursively."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    return obj


__all__ = ["parse", "to_dict"]
