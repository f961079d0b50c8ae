"""Typed, validated configuration objects built from plain JSON/YAML data.

Every config in zoo (a family's config, a training recipe, a catalog entry) is a frozen
dataclass. ``parse(cls, raw, where=...)`` turns untrusted data into one, rejecting unknown
keys, missing fields, wrong types and out-of-range numbers *before* anything is allocated,
with a message that names the offending field. ``to_dict`` turns it back into JSON data.

Bounds live on the fields: ``width: int = field(default=64, metadata=bounds(1, 8192))``.
A config may define ``validate(self)`` for checks that involve several fields; it should
raise ``ConfigError`` (or ``ValueError``, which is converted).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import reprlib
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

from zoo.errors import ConfigError

T = TypeVar("T")
MAX_MESSAGE = 500  # an error message quotes values; a hostile value must not make it a page
_repr = reprlib.Repr()
_repr.maxstring = _repr.maxother = 40


def bounds(low: float | None = None, high: float | None = None) -> dict[str, Any]:
    """Field metadata: the inclusive range allowed for a number (or for each item of a list)."""
    return {"low": low, "high": high}


def parse(cls: type[T], raw: Any, *, where: str = "config") -> T:
    """Validate ``raw`` (a mapping from JSON or YAML) and build a ``cls`` dataclass from it."""
    if isinstance(raw, cls):
        return raw
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {_kind(raw)}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = [k for k in raw if k not in fields]
    if unknown:
        allowed = ", ".join(sorted(fields))
        raise ConfigError(f"{where}: unknown key {_quote(unknown[0])} (allowed: {allowed})")
    hints = _type_hints(cls)
    values = {}
    for name, f in fields.items():
        path = f"{where}.{name}"
        if name not in raw:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{path}: required field is missing")
            continue
        values[name] = _coerce(hints[name], raw[name], path, f.metadata)
    try:
        obj = cls(**values)
        check = getattr(obj, "validate", None)
        if check is not None:
            check()
    except ConfigError as exc:
        if len(str(exc)) <= MAX_MESSAGE:
            raise
        raise ConfigError(_clip(str(exc))) from None  # a check that quoted a huge value
    except (ValueError, TypeError) as exc:
        raise ConfigError(_clip(f"{where}: {exc}")) from None
    return obj


def _clip(message: str) -> str:
    message = " ".join(message.split())
    return message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 3] + "..."


@functools.cache
def _type_hints(cls: type) -> dict[str, Any]:
    # Resolving string annotations compiles each one: once per class is enough.
    return typing.get_type_hints(cls)


def to_dict(obj: Any) -> dict[str, Any]:
    """The JSON-serialisable form of a config dataclass (tuples become lists)."""
    return _plain(dataclasses.asdict(obj))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _coerce(tp: Any, value: Any, path: str, meta: Mapping[str, Any]) -> Any:
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        options = get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(option, value, path, meta)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{path}: got {_kind(value)}")
    if origin is Literal:
        choices = get_args(tp)
        if value not in choices or isinstance(value, bool) != isinstance(choices[0], bool):
            shown = ", ".join(repr(c) for c in choices)
            raise ConfigError(f"{path}: must be one of {shown}, got {_show(value)}")
        return value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path}: expected a list, got {_kind(value)}")
        args = get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"{path}: expected {len(args)} items, got {len(value)}")
            items = [_coerce(a, v, f"{path}[{i}]", meta) for i, (a, v) in enumerate(zip(args, value))]
        else:
            item = args[0] if args else Any
            items = [_coerce(item, v, f"{path}[{i}]", meta) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin in (dict, Mapping) or tp in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{path}: expected a mapping, got {_kind(value)}")
        args = get_args(tp)
        val_tp = args[1] if args else Any
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ConfigError(f"{path}: keys must be strings, got {_kind(k)}")
            out[k] = _coerce(val_tp, v, f"{path}.{k}", {})
        return out
    if dataclasses.is_dataclass(tp):
        return parse(tp, value, where=path)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true or false, got {_kind(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: expected an integer, got {_kind(value)}")
        return _check_range(value, path, meta)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path}: expected a number, got {_kind(value)}")
        try:
            number = float(value)
        except OverflowError:  # an integer beyond the range of a float
            raise ConfigError(f"{path}: must be finite, got {_kind(value)}") from None
        if not math.isfinite(number):
            raise ConfigError(f"{path}: must be finite, got {value!r}")
        return _check_range(number, path, meta)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path}: expected a string, got {_kind(value)}")
        return value
    raise TypeError(f"zoo.config cannot validate fields of type {tp!r} ({path})")


def _check_range(value: float, path: str, meta: Mapping[str, Any]) -> Any:
    low, high = meta.get("low"), meta.get("high")
    if low is not None and value < low:
        raise ConfigError(f"{path}: must be at least {low}, got {_number(value)}")
    if high is not None and value > high:
        raise ConfigError(f"{path}: must be at most {high}, got {_number(value)}")
    return value


def _number(value: float) -> str:
    """``value`` for a message; Python refuses to print integers of more than 4300 digits."""
    if isinstance(value, int) and value.bit_length() > 100:
        return f"an integer of about {int(value.bit_length() * math.log10(2)) + 1} digits"
    return str(value)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"int {_number(value)}"
    # reprlib: bounded in length and depth, whatever nests inside ``value``.
    try:
        text = _repr.repr(value)
    except ValueError:  # an integer too long to print, somewhere inside
        text = "..."
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{type(value).__name__} {text}"


def _show(value: Any) -> str:
    """A value quoted in a message: short, and printable whatever it holds."""
    if isinstance(value, str):
        return _repr.repr(value)
    return _kind(value)


def _quote(key: Any) -> str:
    if isinstance(key, str):
        return f"'{key}'" if len(key) <= 60 and key.isprintable() else _repr.repr(key)
    return _kind(key)


def check_shape_field(shape: tuple[int, ...], *, max_elements: int = 1 << 22) -> None:
    """Shared validation for a config's ``shape``: positive sizes, not absurdly large."""
    if not shape:
        raise ConfigError("shape: must have at least one dimension")
    total = 1
    for size in shape:
        if size < 1:
            raise ConfigError(f"shape: sizes must be positive, got {list(shape)}")
        total *= size
    if total > max_elements:
        raise ConfigError(f"shape: {list(shape)} has {total} elements, more than {max_elements}")
