"""``syncagents console APP``: talk to the agent with no server (see ``syncagents.console``)."""

from __future__ import annotations

import sys

import click

from . import app_argument, main, resolve_options


@main.command("console")
@app_argument
@click.option("--input", "input_path", type=click.Path(exists=True, dir_okay=False),
              help="WAV file the user says (any rate/channels), played at real-time pace.")
@click.option("--mic", is_flag=True, help="Use the microphone as the user (needs [mic]).")
@click.option("--output", "output_path", type=click.Path(dir_okay=False),
              help="Write what the agent says to this WAV (mono 16-bit, real-time timeline).")
@click.option("--speaker", is_flag=True, help="Play what the agent says (needs [mic]).")
@click.option("--text", "texts", multiple=True, metavar="MESSAGE",
              help="A chat message the user sends (repeatable; sent in order).")
@click.option("--log-level", envvar="SYNCAGENTS_LOG_LEVEL", default="WARNING", show_default=True)
@click.option("--log-format", type=click.Choice(["pretty", "json"]), default="pretty",
              show_default=True)
@click.option("--max-blocking-ms", type=float, default=100.0, show_default=True,
              help="Warn when one greenlet holds the hub longer than this.")
@click.option("--max-duration", type=float, default=None,
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
    log_level: str,
    log_format: str,
    max_blocking_ms: float,
    max_duration: float | None,
) -> None:
    """Run APP's entrypoint in a local room; print the conversation as it happens."""
    if input_path and mic:
        raise click.UsageError("--input and --mic are exclusive")
    from ..log import setup_logging

    setup_logging(log_level, log_format)
    opts = resolve_options(ctx, app)
    if opts.entrypoint_fnc is None:
        raise click.ClickException("the app has no entrypoint_fnc to run in the console")
    from ..console import run_console

    try:
        result = run_console(
            opts.entrypoint_fnc,
            prewarm=opts.prewarm_fnc,
            input_path=input_path,
            mic=mic,
            output_path=output_path,
            speaker=speaker,
            texts=texts,
            max_duration=max_duration,
            max_blocking_ms=max_blocking_ms,
        )
    except (RuntimeError, ValueError, TimeoutError) as exc:
        raise click.ClickException(str(exc)) from None
    sys.exit(result.exit_code)
