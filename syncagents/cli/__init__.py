"""The ``syncagents`` command line (click).

``syncagents run|start|dev|connect|download-files|plugins APP``; ``run_app(opts)`` offers the
same commands to a script (``python my_agent.py run``), with ``APP`` being the script's own
``WorkerOptions``. Other modules add commands to :data:`main` (``console`` does, from
``syncagents.cli.console``), using :func:`app_argument` and :func:`resolve_options`.

Heavy imports happen inside the commands, so ``syncagents --help`` and a worker's start-up
stay fast.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

import click

from ..version import __version__

__all__ = ["AppContext", "app_argument", "main", "resolve_options", "run_app"]

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class AppContext:
    """What every command gets as ``ctx.obj``."""

    opts: Any = None  # WorkerOptions given to run_app (then APP may be omitted)
    child_prefix: tuple[str, ...] = (sys.executable, "-m", "syncagents.cli")
    script: str | None = None  # the script that called run_app


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="syncagents")
@click.pass_context
def main(ctx: click.Context) -> None:
    """LiveKit voice agents in plain, blocking Python (gevent)."""
    if ctx.obj is None:
        ctx.obj = AppContext()


def app_argument(fn: F) -> F:
    """The ``APP`` argument: required from the ``syncagents`` script, optional under run_app."""
    return click.argument("app", required=False, metavar="APP")(fn)


def resolve_options(ctx: click.Context, app: str | None) -> Any:
    """``APP`` (or run_app's options) → ``WorkerOptions``; a clear one-line error otherwise."""
    from .app_loader import AppError, load_app

    obj: AppContext = ctx.obj or AppContext()
    if app is None:
        if obj.opts is None:
            raise click.UsageError("missing argument APP (path/to/file.py or package.module)")
        return obj.opts
    try:
        return load_app(app)
    except AppError as exc:
        raise click.ClickException(str(exc)) from None


def run_app(opts: Any, args: list[str] | None = None) -> NoReturn:
    """``if __name__ == "__main__": run_app(WorkerOptions(...))``: the CLI for one script."""
    script = os.path.abspath(sys.argv[0])
    main.main(
        args=args,
        prog_name=os.path.basename(sys.argv[0]),
        obj=AppContext(opts=opts, child_prefix=(sys.executable, script), script=script),
    )
    raise SystemExit(0)  # main.main exits itself; this is for type checkers


def _load_commands() -> None:
    from . import plugin_cmds, worker_cmds  # noqa: F401  (they register on `main`)

    # commands that live with their feature register themselves when present
    for name in ("syncagents.cli.console",):
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise


_load_commands()
