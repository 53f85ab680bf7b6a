"""The central registry: names in YAML configs -> classes.

One ``Registry`` holds a table per *kind* (model, builder, task, ...). Unlike LAVIS, looking up
an unknown name raises at once with the closest registered names, instead of returning ``None``.
Re-registering the same class (a module imported twice, e.g. as ``__main__`` and by name) is
harmless; registering a *different* class under a taken name is an error.
"""

from __future__ import annotations

import difflib
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

KINDS = (
    "model",
    "builder",
    "task",
    "runner",
    "processor",
    "lr_scheduler",
    "frame_sampler",
    "embedder",
    "stage",
)


class RegistryError(KeyError):
    """An unknown name, or a clash between two different objects under one name."""

    def __str__(self) -> str:  # KeyError would print the message in quotes
        return str(self.args[0]) if self.args else ""


def closest(name: str, candidates: list[str] | tuple[str, ...], n: int = 3) -> list[str]:
    """The candidates most similar to ``name`` (used for every 'did you mean' message)."""
    return difflib.get_close_matches(name, list(candidates), n=n, cutoff=0.5)


def did_you_mean(name: object, candidates, prefix: str = "") -> str:
    """``"; did you mean 'x'?"`` for the closest candidate, or ``""`` (every lookup error uses it)."""
    found = closest(str(name), [str(c) for c in candidates], n=1)
    return f"; did you mean '{prefix}{found[0]}'?" if found else ""


def _same_object(a: Any, b: Any) -> bool:
    """True when ``a`` and ``b`` are one definition, even if their module ran twice.

    A module executed a second time (reloaded, or run as ``__main__`` while also imported by
    name) creates a new class object with the same name from the same source file.
    """
    if a is b:
        return True
    return getattr(a, "__qualname__", None) == getattr(b, "__qualname__", None) and (
        _source_file(a) == _source_file(b) is not None
    )


def _source_file(obj: Any) -> str | None:
    code = getattr(obj, "__code__", None)
    if code is None and isinstance(obj, type):
        code = next((f.__code__ for f in vars(obj).values() if hasattr(f, "__code__")), None)
    if code is not None:
        return os.path.realpath(code.co_filename)
    module = sys.modules.get(getattr(obj, "__module__", ""), None)
    path = getattr(module, "__file__", None)
    return os.path.realpath(path) if path else f"module:{getattr(obj, '__module__', None)}"


class Registry:
    """Tables of named objects, one table per kind."""

    def __init__(self, kinds: tuple[str, ...] = KINDS) -> None:
        self._tables: dict[str, dict[str, Any]] = {kind: {} for kind in kinds}

    def register(self, kind: str, name: str) -> Callable[[T], T]:
        """Decorator: ``@registry.register("model", "blip2_video_opt")``."""
        table = self._table(kind)

        def decorate(obj: T) -> T:
            existing = table.get(name)
            if existing is not None and not _same_object(existing, obj):
                raise RegistryError(
                    f"{kind} name {name!r} is already registered to "
                    f"{existing.__module__}.{existing.__qualname__}; cannot register "
                    f"{obj.__module__}.{obj.__qualname__} under the same name"
                )
            table[name] = obj
            return obj

        return decorate

    def get(self, kind: str, name: str) -> Any:
        """The object registered as ``name``; raises ``RegistryError`` with suggestions."""
        table = self._table(kind)
        if name in table:
            return table[name]
        hint = did_you_mean(name, table)
        known = ", ".join(sorted(table)) or "none"
        raise RegistryError(f"unknown {kind} {name!r}{hint} (registered {kind}s: {known})")

    def names(self, kind: str) -> list[str]:
        return sorted(self._table(kind))

    def kinds(self) -> tuple[str, ...]:
        return tuple(self._tables)

    def _table(self, kind: str) -> dict[str, Any]:
        if kind not in self._tables:
            hint = did_you_mean(kind, self._tables)
            raise RegistryError(f"unknown registry kind {kind!r}{hint}")
        return self._tables[kind]

    # Shorthands in LAVIS's spelling, so decorators read naturally in component files.
    def register_model(self, name: str) -> Callable[[T], T]:
        return self.register("model", name)

    def register_builder(self, name: str) -> Callable[[T], T]:
        return self.register("builder", name)

    def register_task(self, name: str) -> Callable[[T], T]:
        return self.register("task", name)

    def register_runner(self, name: str) -> Callable[[T], T]:
        return self.register("runner", name)

    def register_processor(self, name: str) -> Callable[[T], T]:
        return self.register("processor", name)

    def register_lr_scheduler(self, name: str) -> Callable[[T], T]:
        return self.register("lr_scheduler", name)

    def register_frame_sampler(self, name: str) -> Callable[[T], T]:
        return self.register("frame_sampler", name)


registry = Registry()
