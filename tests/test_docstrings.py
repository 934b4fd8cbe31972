"""Every public name syncagents defines has a docstring (the API reference is built from them).

Public: a module whose dotted path has no part starting with ``_``; a class or function such
a module defines (not one it imports) whose name has no leading ``_``; and the public
methods, properties, classmethods and staticmethods a public class defines itself.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from types import ModuleType

import syncagents


def _public_modules() -> list[ModuleType]:
    modules = [syncagents]
    for info in pkgutil.walk_packages(syncagents.__path__, "syncagents."):
        if any(part.startswith("_") for part in info.name.split(".")):
            continue
        if info.name.endswith("__main__"):
            continue
        modules.append(importlib.import_module(info.name))
    return modules


def _members(cls: type) -> list[tuple[str, object]]:
    found = []
    for name, value in vars(cls).items():
        if name.startswith("_"):
            continue
        if isinstance(value, (staticmethod, classmethod)):
            value = value.__func__
        if isinstance(value, property):
            value = value.fget
        if inspect.isfunction(value):
            found.append((name, value))
    return found


def _missing() -> list[str]:
    missing: set[str] = set()
    for module in _public_modules():
        if not (module.__doc__ or "").strip():
            missing.add(module.__name__)
        for name, obj in vars(module).items():
            if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
                continue
            if not (inspect.isclass(obj) or inspect.isfunction(obj)):
                continue
            qualname = f"{module.__name__}.{name}"
            # inspect.getdoc would inherit a base class's text: the name's own is wanted
            if not _own_doc(obj):
                missing.add(qualname)
            if inspect.isclass(obj):
                for member, fn in _members(obj):
                    if not (getattr(fn, "__doc__", None) or "").strip():
                        if _documented_in_base(obj, member):
                            continue
                        missing.add(f"{qualname}.{member}")
    return sorted(missing)


def _own_doc(obj: object) -> str:
    doc = (getattr(obj, "__doc__", None) or "").strip()
    # @dataclass writes "Name(field: type, ...)" when the class has no docstring
    if inspect.isclass(obj) and doc.startswith(f"{obj.__name__}("):
        return ""
    return doc


def _documented_in_base(cls: type, member: str) -> bool:
    """An override of a documented base method keeps the base's contract (and its text)."""
    for base in cls.__mro__[1:]:
        value = vars(base).get(member)
        if value is None:
            continue
        if isinstance(value, (staticmethod, classmethod)):
            value = value.__func__
        if isinstance(value, property):
            value = value.fget
        if (getattr(value, "__doc__", None) or "").strip():
            return True
    return False


def test_every_public_name_has_a_docstring() -> None:
    missing = _missing()
    assert not missing, f"{len(missing)} public names without a docstring:\n" + "\n".join(missing)
