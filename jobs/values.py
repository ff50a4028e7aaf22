"""Typed dataclasses from plain nested values, with OmegaConf's conversions and strict keys.

``build(CellConfig, {"batch": "4", "model": {...}})`` converts each value to its field's type
the way OmegaConf does for a structured config (``"4"`` -> 4 for an int, ``1`` -> 1.0 for a
float, ``"true"`` -> True for a bool, numbers -> text for a str), refuses values it cannot
convert and keys the dataclass does not have (naming the closest known key), then lets each
dataclass's ``__post_init__`` check ranges. The planner and single runs both go through it,
so a setting is checked the same way however it arrived.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import functools
import marshal
import math
import types
import typing
from typing import Any, TypeVar, Union

T = TypeVar("T")

_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")
_KIND = {int: "Integer", float: "Float", bool: "Boolean", str: "String"}


class ValuesError(ValueError):
    """A value or key that the dataclass cannot take; the message names the setting."""


def finite(name: str, value: float) -> float:
    """The one finite-number rule: ``value`` unless it is NaN or an infinity (a limit, a rate
    or a budget of NaN compares false with everything and would silently open every gate)."""
    if not math.isfinite(value):
        raise ValuesError(f"{name}={value!r} is not allowed: a finite number is required")
    return value


def finite_float(text: str) -> float:
    """argparse ``type=``: a finite number (NaN, inf and words refused with their reason)."""
    import argparse

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    try:
        return finite("value", value)
    except ValuesError:
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed: a finite number") from None


def _optional(tp: Any) -> tuple[Any, bool]:
    """(the type inside Optional[...], whether None is allowed)."""
    origin = typing.get_origin(tp)
    if origin is Union or origin is types.UnionType:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0], True
    return tp, False


def _bad(name: str, value: Any, tp: Any) -> ValuesError:
    kind = _KIND.get(tp, getattr(tp, "__name__", str(tp)))
    return ValuesError(
        f"{name}={value!r} is not allowed: Value '{value}' of type "
        f"'{type(value).__name__}' could not be converted to {kind}"
    )


def _scalar(name: str, value: Any, tp: Any) -> Any:
    if tp is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower() if isinstance(value, (str, int)) else None
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise _bad(name, value, tp)
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
        raise _bad(name, value, tp)
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return finite(name, float(value))
        if isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                raise _bad(name, value, tp) from None
            return finite(name, number)
        raise _bad(name, value, tp)
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float, bool)):
            return str(value)
        raise _bad(name, value, tp)
    return value  # Any and other annotations: taken as given


@functools.cache
def _shape(tp: Any) -> tuple[Any, bool, str, Any]:
    """(the type inside Optional[...], whether None is allowed, its kind: "dataclass",
    "dict", "list" or "scalar", the type of a dict's values or of a list's items), once per
    annotation."""
    tp, nullable = _optional(tp)
    if dataclasses.is_dataclass(tp):
        return tp, nullable, "dataclass", None
    origin = typing.get_origin(tp)
    if origin is dict:
        return tp, nullable, "dict", (typing.get_args(tp) or (str, Any))[1]
    if origin in (list, tuple):
        return tp, nullable, "list", (typing.get_args(tp)[:1] or (Any,))[0]
    return tp, nullable, "scalar", None


def _convert(name: str, value: Any, tp: Any) -> Any:
    try:
        tp, nullable, kind, inner = _shape(tp)
    except TypeError:  # an annotation that is not hashable: looked at every time
        tp, nullable, kind, inner = _shape.__wrapped__(tp)
    if value is None:
        if nullable:
            return None
        raise ValuesError(f"{name}=None is not allowed: a value is required")
    if kind == "scalar":
        return _scalar(name, value, tp)
    if kind == "dataclass":
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ValuesError(f"{name}={value!r} is not allowed: expected a group of settings")
        return build(tp, value, prefix=f"{name}.")
    if kind == "dict":
        if not isinstance(value, dict):
            raise ValuesError(f"{name}={value!r} is not allowed: expected a mapping")
        return {str(k): _convert(f"{name}.{k}", v, inner) for k, v in value.items()}
    if not isinstance(value, (list, tuple)):
        raise ValuesError(f"{name}={value!r} is not allowed: expected a list")
    return [_convert(f"{name}[{i}]", v, inner) for i, v in enumerate(value)]


def closest(key: str, known: list[str]) -> str:
    """' (did you mean X?)' for the closest known key, or ''."""
    match = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    return f" (did you mean {match[0]}?)" if match else ""


@functools.cache
def _fields(cls: type) -> tuple[dict[str, Any], tuple[str, ...]]:
    """(field name -> type, names of init fields) of a dataclass, resolved once."""
    hints = typing.get_type_hints(cls)
    return hints, tuple(f.name for f in dataclasses.fields(cls) if f.init)


# Converted settings of a group whose fields are all plain scalars (:func:`_nested`), by its
# dataclass and its values' marshal bytes (types and order included): a sweep's cells repeat
# most groups (the device, the bench preset, ...) and each is converted field by field once.
# A new instance is made every time (its __post_init__ checks run): no cell shares a mutable
# object with another.
_CONVERTED: dict[tuple[type, bytes], dict[str, Any]] = {}
_CONVERTED_MAX = 4096


def build(cls: type[T], values: dict[str, Any], prefix: str = "") -> T:
    """An instance of the dataclass ``cls`` from nested plain values (see the module doc)."""
    memo: tuple[type, bytes] | None = None
    if _nested(cls) == ():  # a group of scalar settings only
        try:
            memo = (cls, marshal.dumps(values))
        except ValueError:  # a value marshal does not write: not remembered
            pass
        kwargs = _CONVERTED.get(memo) if memo is not None else None
        if kwargs is not None:
            return cls(**kwargs)
    hints, fields = _fields(cls)
    unknown = [k for k in values if k not in fields]
    if unknown:
        key = unknown[0]
        known = [f"{prefix}{k}" for k in fields]
        raise ValuesError(
            f"{prefix}{key} is not a known setting{closest(prefix + key, known)}; "
            f"known here: {', '.join(known)}"
        )
    kwargs = {k: _convert(f"{prefix}{k}", v, hints[k]) for k, v in values.items()}
    out = cls(**kwargs)  # its checks passed: the same settings pass them again
    if memo is not None and all(type(v) in _SCALARS for v in kwargs.values()):
        if len(_CONVERTED) >= _CONVERTED_MAX:
            _CONVERTED.clear()
        _CONVERTED[memo] = kwargs
    return out


@functools.cache
def _names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


_SCALARS = frozenset((str, int, float, bool, type(None)))
_SCALAR_HINTS = frozenset((str, int, float, bool))


@functools.cache
def _nested(cls: type) -> tuple[str, ...] | None:
    """The fields of the dataclass ``cls`` that may hold more than a plain scalar (a nested
    dataclass, a list, a mapping, ``Any``), by their declared types; None when the types do
    not resolve. :func:`build` gives the others values of exactly their scalar type."""
    try:
        hints = typing.get_type_hints(cls)
    except Exception:
        return None
    out = []
    for f in dataclasses.fields(cls):
        tp, _ = _optional(hints.get(f.name, Any))
        if tp not in _SCALAR_HINTS:
            out.append(f.name)
    return tuple(out)


def plain(obj: Any) -> Any:
    """``dataclasses.asdict(obj)``, the same values, several times faster (a sweep's driver
    makes a cell's dict a few times per cell): the field names are looked up once per class,
    plain scalars are taken as they are instead of deep-copied, and an instance whose
    ``__dict__`` holds just its fields in their order is read from it: copied whole, then
    only the fields declared as more than a scalar (:func:`_nested`) looked at again."""
    cls = type(obj)
    if cls in _SCALARS:
        return obj
    if hasattr(cls, "__dataclass_fields__"):
        names = _names(cls)
        own = getattr(obj, "__dict__", None)
        if own is not None and len(own) == len(names) and tuple(own) == names:
            nested = _nested(cls)
            if nested is None:
                return {k: v if type(v) in _SCALARS else plain(v) for k, v in own.items()}
            out = own.copy()
            for k in nested:
                v = out[k]
                if type(v) not in _SCALARS:
                    out[k] = plain(v)
            return out
        return {name: plain(getattr(obj, name)) for name in names}
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return cls(*[plain(v) for v in obj])
    if isinstance(obj, (list, tuple)):
        return cls(plain(v) for v in obj)
    if isinstance(obj, dict):
        return cls((plain(k), plain(v)) for k, v in obj.items())
    return copy.deepcopy(obj)


def refusal(cls: type, key: str, value: Any) -> str | None:
    """Why the dotted setting ``key=value`` cannot be taken by the dataclass ``cls`` (the
    message :func:`build` gives for it: an unknown key, a value of the wrong type), or None."""
    nested: Any = value
    for part in reversed(key.split(".")):
        nested = {part: nested}
    try:
        build(cls, nested)
    except ValuesError as exc:
        return str(exc)
    except Exception:  # a range check of other settings: not this value's type
        return None
    return None
