"""A tiny registry: the one list of the things of one kind (tasks, checkers, rewards, conditions, ...).

    TASKS = Registry("task")
    TASKS.register(Task("toy-math", ...))       # or as a decorator on a function or class
    TASKS["toy-math"]                            # KeyError naming the known tasks if absent

A registry is a read-only mapping (name -> object). Registering a second object under
a taken name is an error, unless it is the very same object (a module imported twice,
as verl's plugin loader can do) or ``replace=True`` says so. Names of families that are
built on demand (``rg:<dataset>``) are resolved by a ``factory`` registered for a prefix.

Extensions outside the package (a user's task, reward or condition) live in modules
named by ``$MIRAGE_PLUGINS`` (comma-separated) or by a ``mirage.plugins`` entry point;
``load_plugins()`` imports them once per process, so study steps and verl's Ray
workers see the same registries as the process that started them.
"""

from __future__ import annotations

import importlib
import os
from typing import Any, Callable, Generic, Iterator, Mapping, TypeVar

T = TypeVar("T")

PLUGINS_ENV = "MIRAGE_PLUGINS"


class RegistryError(KeyError):
    """A bad registration or an unknown name. ``str()`` is the message, not its repr."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class Registry(Mapping[str, T], Generic[T]):
    """Name -> object, in registration order."""

    def __init__(self, kind: str, validate: Callable[[T], None] | None = None):
        self.kind = kind
        self._items: dict[str, T] = {}
        self._factories: dict[str, Callable[[str], T]] = {}
        self._validate = validate

    # --- registration -------------------------------------------------------------
    def register(self, obj: T | None = None, *, name: str | None = None, replace: bool = False):
        """Register ``obj`` under ``name`` (default: ``obj.name``); usable as a decorator."""
        if obj is None:
            return lambda o: self.register(o, name=name, replace=replace)
        key = name if name is not None else getattr(obj, "name", None)
        if not isinstance(key, str) or not key:
            raise RegistryError(f"{self.kind} registration needs a non-empty name, got {key!r}")
        if key in self._items and self._items[key] is not obj and not replace:
            raise RegistryError(f"{self.kind} {key!r} is already registered; pass replace=True to replace it")
        if self._validate is not None:
            self._validate(obj)
        self._items[key] = obj
        return obj

    def unregister(self, name: str) -> None:
        self._items.pop(name, None)

    def register_factory(self, prefix: str, factory: Callable[[str], T]) -> None:
        """Names starting with ``prefix`` are built by ``factory(name)`` on first use (then cached)."""
        if prefix in self._factories and self._factories[prefix] is not factory:
            raise RegistryError(f"{self.kind} prefix {prefix!r} already has a factory")
        self._factories[prefix] = factory

    # --- lookup -------------------------------------------------------------------
    def get(self, name: str, default: Any = None) -> T | Any:  # type: ignore[override]
        try:
            return self[name]
        except KeyError:
            return default

    def __getitem__(self, name: str) -> T:
        if name in self._items:
            return self._items[name]
        if isinstance(name, str):
            for prefix, factory in self._factories.items():
                if name.startswith(prefix) and len(name) > len(prefix):
                    return self.register(factory(name), name=name)
        raise RegistryError(f"unknown {self.kind} {name!r}; known: {', '.join(self.known()) or 'none'}")

    def known(self) -> list[str]:
        return list(self._items) + [f"{p}<name>" for p in self._factories]

    def __contains__(self, name: object) -> bool:
        if name in self._items:
            return True
        return isinstance(name, str) and any(name.startswith(p) and len(name) > len(p) for p in self._factories)

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {list(self._items)})"


_LOADED: set[str] = set()
# The modules that register mirage's shipped tasks (their data sources' routes, and the checkers that live
# beside them). Imported by name, as plugins are, by whatever needs every entry: ``mirage.tasks.load_tasks``
# and the scorer's routing (``mirage.rewards.routing``), which sits below the tasks it routes to.
BUILTIN_MODULES = ("mirage.tasks.toy", "mirage.tasks.math", "mirage.tasks.logic", "mirage.tasks.reasoning_gym",
                   "mirage.tasks.code", "mirage.tasks.toy_code")


def load_builtins() -> None:
    """Import the shipped task modules once."""
    for module in BUILTIN_MODULES:
        if module not in _LOADED:
            _LOADED.add(module)  # first: a task module calls back into mirage.tasks while importing
            importlib.import_module(module)


_ALL_LOADED = False


def load_all() -> None:
    """Every registry entry of this process: the shipped modules, then the plugins (once: the scorer asks
    for every response)."""
    global _ALL_LOADED
    if not _ALL_LOADED:
        _ALL_LOADED = True  # first: a module calls back (mirage.tasks.load_tasks) while importing
        load_builtins()
        load_plugins()


def plugin_modules() -> list[str]:
    """Module names of the extensions this process should load ($MIRAGE_PLUGINS, entry points)."""
    names = [m.strip() for m in os.environ.get(PLUGINS_ENV, "").split(",") if m.strip()]
    try:
        from importlib.metadata import entry_points

        names += [ep.value for ep in entry_points(group="mirage.plugins")]
    except Exception:  # noqa: BLE001 - a broken distribution's metadata must not stop mirage from starting
        pass
    return list(dict.fromkeys(names))


def load_plugins() -> list[str]:
    """Import every plugin module once; an import error names the module and the setting."""
    loaded = []
    for module in plugin_modules():
        if module in _LOADED:
            continue
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise ImportError(f"mirage plugin {module!r} (from ${PLUGINS_ENV} or a mirage.plugins entry point) "
                              f"cannot be imported: {e}") from e
        _LOADED.add(module)
        loaded.append(module)
    return loaded
