"""Typed config sections derived from Python signatures.

A config section maps one-to-one onto a constructor (or a dataclass): its parameters and their
type hints *are* the schema, so there is no second list of keys to keep in sync. ``check``
rejects unknown keys (naming the closest valid one), missing required keys and values of the
wrong type, and converts nested dicts into dataclass instances.
"""

from __future__ import annotations

import dataclasses
import inspect
import types
import typing
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal, Union

from lavis.common.registry import did_you_mean, registry

REQUIRED = inspect.Parameter.empty


class ConfigError(ValueError):
    """A config problem; the message names the file, the dotted key and the remedy."""


@dataclasses.dataclass(frozen=True)
class Component:
    """Marks a dict-typed parameter as a nested registered component: ``{"name": ..., **kwargs}``.

    Use as ``Annotated[dict[str, Any], Component("processor")]``; the kwargs are checked against
    the named class's constructor like any other section.
    """

    kind: str


ProcessorSpec = Annotated[dict[str, Any], Component("processor")]


@dataclasses.dataclass(frozen=True)
class Field:
    name: str
    type: Any
    default: Any = REQUIRED

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


def fields_of(target: Callable[..., Any] | type, skip: tuple[str, ...] = ()) -> dict[str, Field]:
    """The typed fields of a dataclass or of a callable's keyword parameters."""
    if dataclasses.is_dataclass(target):
        hints = typing.get_type_hints(target, include_extras=True)
        out = {}
        for f in dataclasses.fields(target):
            if f.name in skip or not f.init:
                continue
            if f.default is not dataclasses.MISSING:
                default = f.default
            elif f.default_factory is not dataclasses.MISSING:
                default = f.default_factory()
            else:
                default = REQUIRED
            out[f.name] = Field(f.name, hints.get(f.name, Any), default)
        return out
    func = target.__init__ if isinstance(target, type) else target
    hints = typing.get_type_hints(func, include_extras=True)
    out = {}
    forwards_kwargs = False
    for name, param in inspect.signature(func).parameters.items():
        if param.kind is param.VAR_KEYWORD:
            forwards_kwargs = True
        if name in ("self", "cls") or name in skip or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        out[name] = Field(name, hints.get(name, Any), param.default)
    if forwards_kwargs and isinstance(target, type):
        # ``def __init__(self, extra, **kwargs): super().__init__(**kwargs)``: the parent's
        # parameters are valid keys too.
        parent = next((c for c in target.__mro__[1:] if "__init__" in vars(c)), object)
        if parent is not object:
            out = {**fields_of(parent, skip), **out}
    return out


def check_section(
    values: Mapping[str, Any],
    fields: Mapping[str, Field],
    path: str,
    where: Callable[[str], str] = lambda key: "",
) -> dict[str, Any]:
    """Validate ``values`` against ``fields``; returns the converted values (defaults not filled).

    ``path`` is the dotted prefix used in messages (``run``, ``model``); ``where(dotted_key)``
    names the file a key came from.
    """
    out: dict[str, Any] = {}
    for key, value in values.items():
        dotted = f"{path}.{key}" if path else str(key)
        if key not in fields:
            raise ConfigError(
                f"{where(dotted)}unknown key '{dotted}'{did_you_mean(key, fields, f'{path}.')} "
                f"(valid keys under '{path}': {', '.join(sorted(fields))})"
            )
        out[key] = convert(value, fields[key].type, dotted, where)
    missing = [name for name, f in fields.items() if f.required and name not in values]
    if missing:
        keys = ", ".join(f"'{path}.{m}'" for m in missing)
        raise ConfigError(f"missing required key(s) {keys}")
    return out


def convert(value: Any, hint: Any, dotted: str, where: Callable[[str], str]) -> Any:
    """Check ``value`` against the type ``hint``; returns it (nested dataclasses built)."""
    if hint is Any or hint is inspect.Parameter.empty:
        return value
    origin = typing.get_origin(hint)
    if origin is Annotated:
        base, *extras = typing.get_args(hint)
        component = next((e for e in extras if isinstance(e, Component)), None)
        if component is None:
            return convert(value, base, dotted, where)
        return _convert_component(value, component.kind, dotted, where)
    args = typing.get_args(hint)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return convert(value, arg, dotted, where)
            except ConfigError as err:
                errors.append(err)
        raise errors[0] if len(errors) == 1 else _type_error(value, hint, dotted, where)
    if origin is Literal:
        if value in args:
            return value
        raise ConfigError(
            f"{where(dotted)}'{dotted}' = {value!r} is not one of "
            f"{', '.join(map(repr, args))}{did_you_mean(value, args)}"
        )
    if origin in (list, tuple) or hint in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise _type_error(value, hint, dotted, where)
        item = args[0] if args else Any
        items = [convert(v, item, f"{dotted}[{i}]", where) for i, v in enumerate(value)]
        return tuple(items) if (origin or hint) is tuple else items
    if origin is dict or hint is dict:
        if not isinstance(value, Mapping):
            raise _type_error(value, hint, dotted, where)
        value_hint = args[1] if len(args) == 2 else Any
        return {k: convert(v, value_hint, f"{dotted}.{k}", where) for k, v in value.items()}
    if dataclasses.is_dataclass(hint):
        if isinstance(value, hint):
            return value
        if not isinstance(value, Mapping):
            raise _type_error(value, hint, dotted, where)
        return hint(**check_section(value, fields_of(hint), dotted, where))
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise _type_error(value, hint, dotted, where)
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _type_error(value, hint, dotted, where)
    if isinstance(hint, type):
        if isinstance(value, hint):
            return value
        raise _type_error(value, hint, dotted, where)
    return value


def _convert_component(value: Any, kind: str, dotted: str, where: Callable[[str], str]) -> dict:
    if not isinstance(value, Mapping) or "name" not in value:
        raise ConfigError(f"{where(dotted)}'{dotted}' must be a mapping with a 'name' (a registered {kind})")
    cls = registry.get(kind, value["name"])
    kwargs = {k: v for k, v in value.items() if k != "name"}
    return {"name": value["name"], **check_section(kwargs, fields_of(cls), dotted, where)}


def _type_error(value: Any, hint: Any, dotted: str, where: Callable[[str], str]) -> ConfigError:
    name = getattr(hint, "__name__", None) or str(hint).replace("typing.", "")
    return ConfigError(
        f"{where(dotted)}'{dotted}' = {value!r} has type {type(value).__name__}, expected {name}"
    )
