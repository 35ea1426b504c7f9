"""The one config loader: a frozen dataclass's fields are the CLI flags (and the TOML keys).

Unknown keys, values of the wrong type and non-finite floats (`nan`, `inf`, which argparse's `float`
accepts) are errors, so a typo never silently runs the default; ranges are each dataclass's own check.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")


def _base_type(annotation: Any) -> tuple[type, bool]:
    """(scalar type, optional?) of `int`, `float | None`, `str`, `bool`."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0], True
    return annotation, False


def add_arguments(parser: argparse.ArgumentParser, cls: type, skip: tuple[str, ...] = ()) -> None:
    """One `--field-name` flag per dataclass field; help text from the field's `doc` metadata."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        kind, _ = _base_type(hints[f.name])
        flag = "--" + f.name.replace("_", "-")
        doc = f.metadata.get("doc", "")
        default = f.default if f.default is not dataclasses.MISSING else None
        if kind is bool:
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None,
                                help=f"{doc} (default: {default})")
        else:
            parser.add_argument(flag, dest=f.name, type=kind, default=None, metavar=kind.__name__.upper(),
                                help=f"{doc} (default: {default})")


def from_mapping(cls: type[T], values: Mapping[str, Any], where: str = "config") -> T:
    """Build `cls` from `values`, refusing unknown keys and wrong types with one clear line."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; known: {sorted(names)}")
    checked = {}
    for name, value in values.items():
        kind, optional = _base_type(hints[name])
        if value is None and optional:
            checked[name] = None
            continue
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ValueError(f"{where}: {name}={value!r} should be {kind.__name__}")
        if kind is float and not math.isfinite(value):
            raise ValueError(f"{where}: {name}={value!r} should be a finite number")
        checked[name] = value
    return cls(**checked)


def from_args(cls: type[T], namespace: argparse.Namespace, base: Mapping[str, Any] | None = None) -> T:
    """`base` (e.g. from a TOML file) overridden by the flags the user actually gave."""
    names = {f.name for f in dataclasses.fields(cls)}
    values = dict(base or {})
    values.update({k: v for k, v in vars(namespace).items() if k in names and v is not None})
    return from_mapping(cls, values, where="options")
