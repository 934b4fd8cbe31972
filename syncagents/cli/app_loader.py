"""Resolve ``APP`` (``path/to/file.py`` or ``package.module``, optionally ``:attribute``) to
``WorkerOptions``."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = ["AppError", "app_folder", "load_app", "split_app"]


class AppError(Exception):
    """APP could not be resolved; the message says why, in one line."""


def split_app(spec: str) -> tuple[str, str | None]:
    """``"a/b.py:opts"`` → ``("a/b.py", "opts")``; the attribute part is optional."""
    target, sep, attr = spec.rpartition(":")
    if sep and attr.isidentifier() and target:
        return target, attr
    return spec, None


def _is_path(target: str) -> bool:
    return target.endswith(".py") or os.sep in target or "/" in target


def _import(target: str) -> ModuleType:
    from ..plugin import MissingExtraError

    try:
        return _import_target(target)
    except MissingExtraError as exc:
        # the app is fine, the installation lacks an extra: say what to install, no traceback
        raise AppError(str(exc)) from None


def _import_target(target: str) -> ModuleType:
    if _is_path(target):
        path = Path(target).expanduser().resolve()
        if not path.is_file():
            raise AppError(f"no such file: {target}")
        folder = str(path.parent)
        if folder not in sys.path:
            sys.path.insert(0, folder)  # the app's own sibling modules import as usual
        name = path.stem if path.stem.isidentifier() else "syncagents_app"
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise AppError(f"cannot import {target}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError as exc:
        if exc.name and (target == exc.name or target.startswith(exc.name + ".")):
            raise AppError(f"no module named {target!r}") from None
        raise


def load_app(spec: str) -> Any:
    """Import the app and return its ``WorkerOptions``.

    Without ``:attribute`` the module must hold exactly one ``WorkerOptions`` instance, or a
    function named ``entrypoint`` (then ``request_fnc`` and ``prewarm`` are used if defined).
    An attribute may name a ``WorkerOptions`` or an entrypoint function.
    """
    from ..worker import WorkerOptions

    target, attr = split_app(spec)
    module = _import(target)
    if attr is not None:
        if not hasattr(module, attr):
            raise AppError(f"{target} has no attribute {attr!r}")
        value = getattr(module, attr)
        if isinstance(value, WorkerOptions):
            return value
        if callable(value):
            return _from_functions(module, value)
        raise AppError(f"{target}:{attr} is neither WorkerOptions nor an entrypoint function")
    found = [v for v in vars(module).values() if isinstance(v, WorkerOptions)]
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        raise AppError(f"{target} holds {len(found)} WorkerOptions; pick one with {target}:<name>")
    entry = getattr(module, "entrypoint", None)
    if inspect.isfunction(entry):
        return _from_functions(module, entry)
    raise AppError(
        f"{target} has no WorkerOptions and no function named 'entrypoint' "
        f"(or name one with {target}:<name>)"
    )


def _from_functions(module: ModuleType, entry: Any) -> Any:
    from ..worker import WorkerOptions

    request = getattr(module, "request_fnc", None)
    prewarm = getattr(module, "prewarm", None)
    return WorkerOptions(
        entrypoint_fnc=entry,
        request_fnc=request if callable(request) else None,
        prewarm_fnc=prewarm if callable(prewarm) else None,
    )


def app_folder(spec: str) -> Path:
    """The folder whose ``.py`` files ``dev`` watches."""
    target, _ = split_app(spec)
    if _is_path(target):
        return Path(target).expanduser().resolve().parent
    found = importlib.util.find_spec(target)
    if found is None or not found.origin:
        raise AppError(f"no module named {target!r}")
    return Path(found.origin).resolve().parent
