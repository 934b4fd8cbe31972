"""``syncagents console APP``: talk to the agent with no server (see ``syncagents.console``).

Everything that can be checked before the agent starts is checked first (options, the input
file, the output folder), and each problem is one ``Error: ...`` line with exit code 2. Ctrl-C
ends the conversation cleanly (the output WAV is finished) with exit code 130; a second
Ctrl-C exits at once.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

import click

from . import app_argument, main, resolve_options

_LEVELS = ["TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "WARN", "ERROR", "CRITICAL"]
EXIT_USAGE = 2


class OneLineUsageError(click.UsageError):
    """A usage error printed as one ``Error: ...`` line (no usage block, no hint)."""

    def show(self, file: Any = None) -> None:
        """Print ``Error: <message>`` to stderr."""
        click.echo(f"Error: {self.format_message()}", file=file, err=True)


class _ConsoleCommand(click.Command):
    """Reports option errors (bad values, missing files...) on one line, exit code 2."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """click's parsing, with its usage errors turned into one-line ones."""
        try:
            return super().parse_args(ctx, args)
        except OneLineUsageError:
            raise
        except click.UsageError as exc:
            raise OneLineUsageError(exc.format_message(), exc.ctx) from None


def _check_output(path: str) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise OneLineUsageError(f"--output: folder {folder} does not exist")
    if os.path.isdir(path):
        raise OneLineUsageError(f"--output: {path} is a folder")
    if not os.access(folder, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise OneLineUsageError(f"--output: cannot write {path}")


def _on_ctrl_c(stop: Any) -> None:
    """First Ctrl-C: end the conversation cleanly; second: leave now (the WAV header is
    rewritten after every frame, so the file is valid either way)."""
    if stop.is_set():
        os._exit(130)
    stop.set()


@main.command("console", cls=_ConsoleCommand)
@app_argument
@click.option("--input", "input_path", type=click.Path(dir_okay=False),
              help="Audio file the user says (WAV of any format, MP3, OGG/Opus, FLAC: anything "
                   "PyAV reads), played at real-time pace.")
@click.option("--mic", is_flag=True, help="Use the microphone as the user (needs [mic]).")
@click.option("--output", "output_path", type=click.Path(dir_okay=False),
              help="Write what the agent says to this WAV (mono 16-bit, real-time timeline).")
@click.option("--speaker", is_flag=True, help="Play what the agent says (needs [mic]).")
@click.option("--text", "texts", multiple=True, metavar="MESSAGE",
              help="A chat message the user sends (repeatable; sent in order, each after the "
                   "agent answered). Without --input/--mic, lines typed on stdin follow.")
@click.option("--idle-timeout", type=click.FloatRange(min=0, min_open=True), default=2.0,
              show_default=True,
              help="End once the input is over and the agent was silent this many seconds.")
@click.option("--log-level", envvar="SYNCAGENTS_LOG_LEVEL", show_envvar=True,
              type=click.Choice(_LEVELS, case_sensitive=False), default="WARNING",
              show_default=True)
@click.option("--log-format", type=click.Choice(["pretty", "json"]), default=None,
              help="Default: pretty on a terminal, json otherwise.")
@click.option("--max-blocking-ms", type=float, default=100.0, show_default=True,
              help="Warn when one greenlet holds the hub longer than this (0: off).")
@click.option("--max-duration", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Stop after this many seconds whatever happens.")
@click.pass_context
def console(
    ctx: click.Context,
    app: str | None,
    input_path: str | None,
    mic: bool,
    output_path: str | None,
    speaker: bool,
    texts: tuple[str, ...],
    idle_timeout: float,
    log_level: str,
    log_format: str | None,
    max_blocking_ms: float,
    max_duration: float | None,
) -> None:
    """Run APP's entrypoint in a local room; print the conversation as it happens.

    With neither --input nor --mic, the console is in text mode: each line typed on stdin
    is a chat message, until EOF (Ctrl-D).
    """
    if input_path and mic:
        raise OneLineUsageError("--input and --mic are exclusive")
    from ..log import setup_logging

    fmt = log_format or ("pretty" if sys.stdout.isatty() else "json")  # as the other commands
    setup_logging(log_level, fmt)
    from ..console import InputError, load_audio

    audio = None
    if input_path:
        try:
            audio = load_audio(input_path)
        except InputError as exc:
            raise OneLineUsageError(f"--input: {exc}") from None
    if output_path:
        _check_output(output_path)

    import gevent
    import gevent.event

    # from here on Ctrl-C ends the run cleanly (during a slow import or prewarm, once it is done)
    stop = gevent.event.Event()
    gevent.signal_handler(signal.SIGINT, _on_ctrl_c, stop)
    try:
        opts = resolve_options(ctx, app)
    except OneLineUsageError:
        raise
    except click.UsageError as exc:
        raise OneLineUsageError(exc.format_message()) from None
    if opts.entrypoint_fnc is None:
        raise click.ClickException("the app has no entrypoint_fnc to run in the console")

    from ..console import LineReader, run_console

    lines = None
    text_mode = audio is None and not mic
    if text_mode:
        if sys.stdin.isatty():
            click.echo("text mode: type a message and press Enter; Ctrl-D ends", err=True)
        lines = LineReader(sys.stdin.fileno())
    try:
        result = run_console(
            opts.entrypoint_fnc,
            prewarm=opts.prewarm_fnc,
            inputs=[audio, *texts] if audio is not None else list(texts),
            lines=lines,
            # typed on a terminal, a message is on screen already
            echo_lines=not (sys.stdin.isatty() and sys.stdout.isatty()),
            mic=mic,
            output_path=output_path,
            speaker=speaker,
            idle_s=idle_timeout,
            max_duration=max_duration,
            max_blocking_ms=max_blocking_ms,
            stop=stop,
        )
    except ValueError as exc:  # an output that cannot be written after all: still usage
        raise OneLineUsageError(str(exc)) from None
    except (RuntimeError, TimeoutError) as exc:
        raise click.ClickException(str(exc)) from None
    sys.exit(result.exit_code)
