"""Validated, frozen configuration objects built from YAML.

Every configuration class is a frozen dataclass whose fields carry their limits in the
field metadata (``lo``/``hi`` inclusive bounds, ``gt`` exclusive lower bound). `load`
reads a YAML file with ``yaml.safe_load`` and builds the dataclass, reporting the first
problem as ``FILE: key.path: expected ..., found ...``. Unknown keys are errors.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints

import yaml

__all__ = ["ConfigError", "bounded", "build", "load"]

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration file or mapping does not match its schema."""


def bounded(
    default: Any = dataclasses.MISSING,
    *,
    lo: float | None = None,
    hi: float | None = None,
    gt: float | None = None,
    doc: str = "",
) -> Any:
    """A dataclass field with numeric limits (checked on load and construction).

    Parameters
    ----------
    default : optional
        Default value; without it the key is required.
    lo, hi : float, optional
        Inclusive lower / upper bound.
    gt : float, optional
        Exclusive lower bound.
    doc : str
        One-line description (used by the configuration reference).
    """
    meta = {"lo": lo, "hi": hi, "gt": gt, "doc": doc}
    if isinstance(default, (list, dict)):
        frozen = tuple(default) if isinstance(default, list) else default
        return dataclasses.field(default_factory=lambda: frozen, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _describe(value: Any) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(value).__name__})"


def _check_range(value: float, meta: typing.Mapping[str, Any], where: str) -> None:
    lo, hi, gt = meta.get("lo"), meta.get("hi"), meta.get("gt")
    if gt is not None and not value > gt:
        raise ConfigError(f"{where}: expected a number > {gt}, found {value!r}")
    if lo is not None and value < lo:
        raise ConfigError(f"{where}: expected a number >= {lo}, found {value!r}")
    if hi is not None and value > hi:
        raise ConfigError(f"{where}: expected a number <= {hi}, found {value!r}")


def _convert(tp: Any, value: Any, where: str, meta: typing.Mapping[str, Any], base: Path | None) -> Any:
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, value, where, meta, base)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{where}: expected {tp}, found {_describe(value)}")
    if origin is Literal:
        allowed = get_args(tp)
        if value not in allowed:
            raise ConfigError(f"{where}: expected one of {list(allowed)}, found {_describe(value)}")
        return value
    if origin is tuple:
        args = get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, found {_describe(value)}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, f"{where}[{i}]", meta, base) for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{where}: expected a list of {len(args)} items, found {len(value)} items")
        return tuple(_convert(a, v, f"{where}[{i}]", meta, base) for i, (a, v) in enumerate(zip(args, value)))
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, where, base)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, found {_describe(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, found {_describe(value)}")
        _check_range(value, meta, where)
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, found {_describe(value)}")
        value = float(value)
        if value != value:
            raise ConfigError(f"{where}: expected a number, found NaN")
        _check_range(value, meta, where)
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, found {_describe(value)}")
        return value
    if tp is Path:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a file path string, found {_describe(value)}")
        path = Path(value)
        return path if path.is_absolute() or base is None else base / path
    raise TypeError(f"unsupported schema type {tp!r} at {where}")  # programming error


def _build(cls: type[T], data: Any, where: str, base: Path | None) -> T:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of keys to values, found {_describe(data)}")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    prefix = f"{where}." if where and not where.endswith(": ") else where
    unknown = sorted(set(map(str, data)) - set(fields))
    removed = getattr(cls, "REMOVED_KEYS", {})
    for key in unknown:
        if key in removed:
            raise ConfigError(f"{prefix}{key}: no longer supported; {removed[key]}")
    if unknown:
        raise ConfigError(
            f"{prefix}{unknown[0]}: unknown key; expected one of {sorted(fields)}"
        )
    kwargs = {}
    for name, f in fields.items():
        key_where = f"{prefix}{name}"
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{key_where}: required key is missing")
            continue
        kwargs[name] = _convert(hints[name], data[name], key_where, f.metadata, base)
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        raise ConfigError(f"{prefix}{exc}") from None


def build(cls: type[T], data: Any, *, source: str = "<config>", base: Path | None = None) -> T:
    """Build and validate ``cls`` from a mapping.

    Parameters
    ----------
    cls : dataclass type
        Schema class.
    data : mapping
        Parsed YAML / dict.
    source : str
        Name used in error messages (usually the file name).
    base : Path, optional
        Directory that relative ``Path`` fields are resolved against.

    Raises
    ------
    ConfigError
        ``SOURCE: key.path: expected ..., found ...``.
    """
    return _build(cls, data, f"{source}: ", base)


def load(cls: type[T], path: str | Path) -> T:
    """Load a YAML file (``yaml.safe_load``) into the validated schema ``cls``.

    Raises
    ------
    ConfigError
        If the file is missing, is not valid YAML or does not match the schema; the
        message names the file and the key path.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration file ({exc.strerror or exc})") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}: not valid YAML{line}: {getattr(exc, 'problem', exc)}") from exc
    return build(cls, data if data is not None else {}, source=str(path), base=path.parent)


def check_fields(obj: Any) -> None:
    """Check the numeric bounds of a dataclass instance built in code (``__post_init__``)."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            _check_range(value, f.metadata, f.name)
