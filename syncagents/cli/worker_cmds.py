"""``run`` (alias ``start``), ``dev`` and ``connect``: commands that run a worker."""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from . import AppContext, app_argument, main, resolve_options

F = TypeVar("F", bound=Callable[..., Any])

_LEVELS = ["TRACE", "DEBUG", "INFO", "WARNING", "WARN", "ERROR", "CRITICAL"]


def worker_options(*, processes: bool = True) -> Callable[[F], F]:
    """The options every worker command shares; ``processes=False`` leaves out
    ``--processes`` (``connect`` runs exactly one worker, for one simulated job)."""
    options = [
        click.option("--url", envvar="LIVEKIT_URL", show_envvar=True, help="LiveKit server URL."),
        click.option("--api-key", envvar="LIVEKIT_API_KEY", show_envvar=True, help="API key."),
        click.option(
            "--api-secret", envvar="LIVEKIT_API_SECRET", show_envvar=True, help="API secret."
        ),
        click.option("--agent-name", default=None, help="Register under this agent name."),
        click.option(
            "--log-level",
            envvar="SYNCAGENTS_LOG_LEVEL",
            show_envvar=True,
            type=click.Choice(_LEVELS, case_sensitive=False),
            default=None,
            help="Default INFO (DEBUG for dev).",
        ),
        click.option(
            "--log-format",
            type=click.Choice(["pretty", "json"]),
            default=None,
            help="Default: pretty on a terminal, json otherwise.",
        ),
        click.option("--drain-timeout", type=float, default=None, help="Seconds (default 1800)."),
        click.option(
            "--max-retry",
            type=click.IntRange(min=0),
            default=None,
            metavar="N",
            help="Connection retries after the first failed attempt (default 16, so 17 "
            "attempts); retry n waits min(2n, 10) s.",
        ),
        click.option(
            "--health-host", default=None, help="Health server address (127.0.0.1)."
        ),
        click.option(
            "--health-port", type=int, default=None, help="Health server port (8081; 0: off)."
        ),
        click.option(
            "--max-blocking-ms",
            type=float,
            default=100.0,
            show_default=True,
            help="Warn when a greenlet holds the hub longer (0: off).",
        ),
    ]
    if processes:
        options.append(
            click.option(
                "--processes",
                default="1",
                show_default=True,
                help="Worker processes: a number or 'auto' (one per CPU).",
            )
        )

    def decorate(fn: F) -> F:
        for option in reversed(options):
            fn = option(fn)
        return fn

    return decorate


@dataclasses.dataclass
class _Params:
    url: str | None
    api_key: str | None
    api_secret: str | None
    agent_name: str | None
    log_level: str | None
    log_format: str | None
    drain_timeout: float | None
    max_retry: int | None
    health_host: str | None
    health_port: int | None
    max_blocking_ms: float
    processes: str = "1"


def _setup(params: _Params, *, dev: bool = False) -> tuple[str, str]:
    import gevent

    from ..log import setup_logging
    from ..runtime import enable_hub_block_detection

    level = (
        params.log_level or ("DEBUG" if dev else os.environ.get("SYNCAGENTS_LOG_LEVEL")) or "INFO"
    ).upper()
    fmt = params.log_format or ("pretty" if dev or sys.stdout.isatty() else "json")
    setup_logging(level, fmt)
    if params.max_blocking_ms > 0:
        # gevent's monitor thread stops for good if it finds the hub greenlet not started
        # (``bool(hub)`` is False then): let the hub run once before the monitor starts.
        gevent.sleep(0)
        enable_hub_block_detection(params.max_blocking_ms)
    return level, fmt


def _apply(opts: Any, params: _Params) -> Any:
    changes: dict[str, Any] = {}
    for field, value in (
        ("ws_url", params.url),
        ("api_key", params.api_key),
        ("api_secret", params.api_secret),
        ("agent_name", params.agent_name),
        ("drain_timeout", params.drain_timeout),
        ("max_retry", params.max_retry),
        ("host", params.health_host),
        ("port", params.health_port),
    ):
        if value is not None:
            changes[field] = value
    return dataclasses.replace(opts, **changes) if changes else opts


def _process_count(value: str) -> int:
    if value.strip().lower() == "auto":
        return max(os.cpu_count() or 1, 1)
    try:
        count = int(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a number or 'auto'", param_hint="--processes"
        ) from None
    if count < 1:
        raise click.BadParameter("must be at least 1", param_hint="--processes")
    return count


def _child_argv(
    ctx: click.Context,
    app: str | None,
    opts: Any,
    level: str,
    fmt: str,
    params: _Params,
    *,
    health_port: int,
    processes: int | None = None,
) -> list[str]:
    """The command line of a child worker (supervised, or run by the dev reloader):
    ``run`` with every setting resolved here, ``processes`` (default: as given) each."""
    obj: AppContext = ctx.obj
    argv = [*obj.child_prefix, "run"]
    if app is not None:
        argv.append(app)
    argv += [
        "--processes", params.processes if processes is None else str(processes),
        "--health-host", opts.host,
        "--health-port", str(health_port),
        "--log-level", level,
        "--log-format", fmt,
        "--max-blocking-ms", str(params.max_blocking_ms),
        "--drain-timeout", str(opts.drain_timeout),
        "--max-retry", str(opts.max_retry),
        "--agent-name", opts.agent_name,
    ]  # fmt: skip
    return argv


def _child_env(opts: Any) -> dict[str, str]:
    # credentials travel in the environment, never on a command line others can read
    env = dict(os.environ)
    env.update(
        LIVEKIT_URL=opts.ws_url or "",
        LIVEKIT_API_KEY=opts.api_key or "",
        LIVEKIT_API_SECRET=opts.api_secret or "",
    )
    return env


def serve(opts: Any, *, room: str | None = None, participant_identity: str | None = None) -> int:
    """Run one worker in this process until it is drained/closed; the process exit code."""
    import gevent
    from loguru import logger

    from ..worker import ConfigurationError, CredentialsRejectedError, Worker, WorkerError
    from .exit_signals import STOP_SIGNALS, ignore_stop_signals
    from .supervisor import EX_CONFIG, heartbeat, status_reporter

    worker = Worker(opts)
    helpers: list[gevent.Greenlet] = []
    report = status_reporter(lambda: helpers.append(gevent.spawn(worker.drain)))
    if report is not None:
        worker.add_status_listener(report)
        helpers.append(gevent.spawn(heartbeat, report, worker.health_info))
    if room is not None:
        worker.simulate_job(room, participant_identity)
    helpers.append(gevent.spawn(_freeze_startup_heap, worker))

    def on_signal(sig: int) -> None:
        if worker.draining:
            logger.warning("second {}: closing now", signal.Signals(sig).name)
            helpers.append(gevent.spawn(worker.close))
            return
        logger.info(
            "{}: draining ({} job(s) running)", signal.Signals(sig).name, len(worker.active_jobs)
        )
        helpers.append(gevent.spawn(worker.drain))

    handlers = [
        gevent.signal_handler(sig, on_signal, sig)
        for sig in STOP_SIGNALS
    ]
    try:
        worker.run()
    except WorkerError as exc:
        logger.error("{}", exc)
        # EX_CONFIG: credentials or options are wrong, and a restart cannot help
        fatal = isinstance(exc, (CredentialsRejectedError, ConfigurationError))
        if report is not None and fatal:
            report({"fatal": str(exc)})  # the supervisor logs why it stops the fleet
        return EX_CONFIG if fatal else 1
    finally:
        for h in handlers:
            h.cancel()
        ignore_stop_signals()  # a third Ctrl-C must not break the exit that is under way
        gevent.killall(helpers, timeout=2)
    return 0


def _freeze_startup_heap(worker: Any) -> None:
    # What exists once the worker first registered (modules, the app, what prewarm loaded)
    # lives as long as the process. Left to the cyclic collector, every full collection walks
    # all of it: 25-50 ms with the hub stopped, and a burst of jobs triggers some (measured:
    # the entrypoints of a whole burst ran that much later). Frozen, a full collection walks
    # only the jobs' objects. Garbage is collected first, so none is kept for good. After
    # registering, not before: it takes 20-50 ms, and registration is what start-up waits on.
    import gc

    try:
        worker.wait_for_registration()
    except Exception:  # the worker gave up: it reports why itself
        return
    gc.collect()
    gc.freeze()


def _run(
    ctx: click.Context,
    app: str | None,
    params: _Params,
    *,
    room: str | None = None,
    participant_identity: str | None = None,
    dev: bool = False,
) -> None:
    count = _process_count(params.processes)  # a bad value fails before anything starts
    level, fmt = _setup(params, dev=dev)
    opts = _apply(resolve_options(ctx, app), params)
    if count > 1:
        from .supervisor import Supervisor

        argv = _child_argv(ctx, app, opts, level, fmt, params, health_port=0, processes=1)
        code = Supervisor(
            argv,
            count,
            env=_child_env(opts),
            agent_name=opts.agent_name,
            health_host=opts.host,
            health_port=opts.port,
            # a worker exits within its drain timeout + 2 s; more means it hangs
            stop_timeout=opts.drain_timeout + 10,
        ).run()
    else:
        code = serve(opts, room=room, participant_identity=participant_identity)
    ctx.exit(code)


@main.command("run")
@app_argument
@worker_options()
@click.pass_context
def run_cmd(ctx: click.Context, app: str | None, **kwargs: Any) -> None:
    """Run a production worker for APP (path/to/file.py or package.module[:attr])."""
    _run(ctx, app, _Params(**kwargs))


main.add_command(run_cmd, "start")


@main.command("connect")
@app_argument
@click.option("--room", required=True, help="Room to run one job in.")
@click.option("--participant-identity", default=None, help="Publisher for a JT_PUBLISHER job.")
@worker_options(processes=False)  # one simulated job: one worker, in this process
@click.pass_context
def connect_cmd(
    ctx: click.Context,
    app: str | None,
    room: str,
    participant_identity: str | None,
    **kwargs: Any,
) -> None:
    """Run a worker and ask the server to simulate one job for ROOM."""
    _run(ctx, app, _Params(**kwargs), room=room, participant_identity=participant_identity)


@main.command("dev")
@app_argument
@worker_options()
@click.option(
    "--reload/--no-reload",
    default=True,
    show_default=True,
    help="Restart the worker when a .py file under the app's folder changes.",
)
@click.pass_context
def dev_cmd(ctx: click.Context, app: str | None, reload: bool, **kwargs: Any) -> None:
    """Like run, with pretty DEBUG logs, restarting when a .py file of the app changes
    (unless --no-reload)."""
    from .app_loader import AppError, app_folder
    from .reloader import Reloader

    params = _Params(**kwargs)
    if params.drain_timeout is None:
        params.drain_timeout = 3.0  # a reload should not wait for long conversations
    if not reload:
        _run(ctx, app, params, dev=True)  # the worker in this process, as `run` does
        return
    _process_count(params.processes)  # a bad value fails here, not in every restart
    level, fmt = _setup(params, dev=True)
    opts = _apply(resolve_options(ctx, app), params)
    obj: AppContext = ctx.obj
    if app is not None:
        try:
            folder = app_folder(app)
        except AppError as exc:
            raise click.ClickException(str(exc)) from None
    elif obj.script is not None:
        folder = Path(obj.script).resolve().parent
    else:
        folder = Path.cwd()
    argv = _child_argv(ctx, app, opts, level, fmt, params, health_port=opts.port)
    code = Reloader(argv, folder, env=_child_env(opts), stop_timeout=opts.drain_timeout + 5).run()
    ctx.exit(code)
