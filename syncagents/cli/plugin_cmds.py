"""``download-files`` and ``plugins``: walk the plugins the app registers when imported."""

from __future__ import annotations

import time
from typing import Any

import click

from . import app_argument, main, resolve_options


def _registered(ctx: click.Context, app: str | None) -> list[Any]:
    resolve_options(ctx, app)  # importing the app imports (and registers) its plugins
    from ..plugin import Plugin

    return list(Plugin.registered_plugins)


@main.command("download-files")
@app_argument
@click.option("--log-level", envvar="SYNCAGENTS_LOG_LEVEL", default="INFO", show_envvar=True)
@click.pass_context
def download_files_cmd(ctx: click.Context, app: str | None, log_level: str) -> None:
    """Download what every registered plugin needs (models, data), with progress."""
    from loguru import logger

    from ..log import setup_logging

    setup_logging(log_level, "pretty")
    plugins = _registered(ctx, app)
    if not plugins:
        logger.info("no plugins registered by the app: nothing to download")
        return
    failed = 0
    for i, plugin in enumerate(plugins, 1):
        logger.info(
            "[{}/{}] {} {}: downloading files", i, len(plugins), plugin.title, plugin.version
        )
        t0 = time.monotonic()
        try:
            plugin.download_files()
        except Exception as exc:
            failed += 1
            logger.error("[{}/{}] {} failed: {}", i, len(plugins), plugin.title, exc)
            continue
        logger.info(
            "[{}/{}] {} done in {:.1f} s", i, len(plugins), plugin.title, time.monotonic() - t0
        )
    ctx.exit(1 if failed else 0)


@main.command("plugins")
@app_argument
@click.pass_context
def plugins_cmd(ctx: click.Context, app: str | None) -> None:
    """List the plugins the app registers, with their versions and their engines' versions."""
    plugins = _registered(ctx, app)
    if not plugins:
        click.echo("no plugins registered")
        return
    rows = [
        (
            plugin.title,
            plugin.version,
            plugin.package,
            # the engine does the work: its version is the one that explains a difference
            ", ".join(f"{name} {version}" for name, version in _engines(plugin).items()),
        )
        for plugin in plugins
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths)]
        click.echo("  ".join([*cells, row[3]]).rstrip())


def _engines(plugin: Any) -> dict[str, str]:
    # third-party plugins may subclass an older Plugin or only duck-type it
    engines = getattr(plugin, "engines", None)
    return dict(engines) if isinstance(engines, dict) else {}
