"""The private internals of other libraries that syncagents relies on, checked at import.

Each of these is a deliberate dependency on something a library does not promise (setup.py
pins the minor versions verified to work). If a new release moves one, syncagents must fail
loudly at import, naming the library and its version — never fall back silently: the FFI
deadlock in NOTES.md (patched locks taken from native threads) would come back unnoticed.
"""

from __future__ import annotations

import builtins
import importlib
import importlib.metadata
import types
from collections.abc import Callable
from typing import Any, NamedTuple

__all__ = [
    "InternalsChanged",
    "KindFilter",
    "RoutedFilter",
    "check_gevent",
    "check_livekit",
    "check_loguru",
    "check_websocket",
    "livekit_event_filters",
]


class InternalsChanged(ImportError):
    """A library no longer has an internal that syncagents relies on."""


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def _require(dist: str, what: str, ok: Callable[[], Any]) -> None:
    try:
        present = bool(ok())
    except Exception:
        present = False
    if not present:
        raise InternalsChanged(
            f"syncagents relies on {what} in {dist}, which {dist} {_version(dist)} does not "
            f"have; install a {dist} version that setup.py allows"
        )


def check_livekit(ffi_client: Any, audio_source_cls: Any) -> None:
    """``livekit.rtc._ffi_client`` and ``AudioSource`` as the bridge uses them."""
    _require("livekit", "_ffi_client.threading (swapped for real locks)",
             lambda: hasattr(ffi_client, "threading"))
    _require("livekit", "FfiClient._instance_lock",
             lambda: hasattr(ffi_client.FfiClient, "_instance_lock"))
    _require("livekit", "FfiQueue with _lock and _subscribers",
             lambda: "_subscribers" in ffi_client.FfiQueue.__init__.__code__.co_names
             and "_lock" in ffi_client.FfiQueue.__init__.__code__.co_names)
    _require("livekit", "FfiClient._dispose", lambda: callable(ffi_client.FfiClient._dispose))
    # The bridge replaces the FFI event queue (its handle-indexed dispatcher): FfiClient must
    # build its queue from the module global at construction, keep it in ``_queue``, and the
    # native callback must hand every event to ``FfiClient.instance.queue.put``.
    _require("livekit", "FfiClient.__init__ building _queue from the module's FfiQueue",
             lambda: {"FfiQueue", "_queue"} <= set(ffi_client.FfiClient.__init__.__code__.co_names))
    _require("livekit", "ffi_event_callback handing events to FfiClient.instance.queue.put",
             lambda: {"instance", "queue", "put"} <= _callback_names(ffi_client.ffi_event_callback))
    _require("livekit", "FfiQueue.subscribe(loop, filter_fn) and unsubscribe(queue)",
             lambda: ffi_client.FfiQueue.subscribe.__code__.co_varnames[:3]
             == ("self", "loop", "filter_fn")
             and ffi_client.FfiQueue.unsubscribe.__code__.co_varnames[:2] == ("self", "queue"))
    _require("livekit", "AudioSource._release_waiter and _ffi_handle",
             lambda: callable(audio_source_cls._release_waiter)
             and "_ffi_handle" in audio_source_cls.__init__.__code__.co_names)


def _callback_names(callback: Any) -> set[str]:
    """The names a ctypes callback's Python function uses (it is wrapped in CFUNCTYPE, whose
    thunk is the only holder of the function: gc finds it)."""
    import gc

    names: set[str] = set()
    for thunk in getattr(callback, "_objects", {}).values():
        for ref in gc.get_referents(thunk):
            if isinstance(ref, types.FunctionType):
                names.update(ref.__code__.co_names)
    return names


class RoutedFilter(NamedTuple):
    """A livekit event filter ``e.WhichOneof("message") == kind and getattr(e, kind).field == v``
    where ``v`` is the filter's one closure variable; with ``none_matches_all``, ``v is None``
    (the id not known yet) lets every event of that kind through instead."""

    kind: str
    field: str
    none_matches_all: bool


class KindFilter(NamedTuple):
    """A livekit event filter that looks at the event's kind only: it accepts every kind
    (``None``: no message set) except ``excluded``."""

    excluded: frozenset[str | None]


# The filters that livekit.rtc hands to FfiQueue.subscribe, which the bridge's dispatcher
# indexes instead of calling: (module, class, method, event kind, id field, closure variable).
# Each filter's id is only known once livekit's request returned (None until then: livekit's
# filter then lets every event of the kind through, and so does the dispatcher).
_ROUTED_FILTERS = (
    ("audio_stream", "AudioStream", "__init__", "audio_stream_event", "stream_handle",
     "handle_id"),
    ("video_stream", "VideoStream", "__init__", "video_stream_event", "stream_handle",
     "handle_id"),
    ("audio_source", "AudioSource", "capture_frame", "capture_audio_frame", "async_id",
     "async_id"),
    ("data_stream", "TextStreamReader", "__init__", "text_stream_reader_event",
     "reader_handle", "handle_id"),
    ("data_stream", "ByteStreamReader", "__init__", "byte_stream_reader_event",
     "reader_handle", "handle_id"),
    ("data_track", "DataTrackStream", "__init__", "data_track_stream_event", "stream_handle",
     "handle_id"),
)
_KIND_FILTERS = (("room", "Room", "connect"),)  # a room takes all but the media streams' events


def livekit_event_filters(event_cls: Any) -> dict[types.CodeType, RoutedFilter | KindFilter]:
    """The code objects of livekit.rtc's event filters and what each one does, for the bridge's
    dispatcher (``event_cls``: ``FfiEvent``). Each filter is found in its method and *run* on
    one probe event of every kind, with each value of its variable: the dispatcher can then
    route by what was verified, never by a guess. A filter that is missing or acts differently
    raises :class:`InternalsChanged`."""
    kinds: list[str | None] = [None]
    kinds += [f.name for f in event_cls.DESCRIPTOR.oneofs_by_name["message"].fields]
    probes: dict[str | None, Any] = {}
    for kind in kinds:
        event = event_cls()
        if kind is not None:
            getattr(event, kind).SetInParent()
        probes[kind] = event
    specs: dict[types.CodeType, RoutedFilter | KindFilter] = {}
    for module, cls, method, kind, field, var in _ROUTED_FILTERS:
        where = f"livekit.rtc.{module}.{cls}.{method}"
        code = _find_lambda(module, cls, method, lambda c, k=kind, v=var: (  # type: ignore[misc]
            c.co_freevars == (v,) and k in c.co_consts))
        spec = _routed_spec(code, kind, field, event_cls, probes) if code is not None else None
        _require("livekit", f"the event filter in {where} ({kind}.{field} == {var})",
                 lambda s=spec: s is not None)  # type: ignore[misc]
        assert code is not None and spec is not None
        specs[code] = spec
    for module, cls, method in _KIND_FILTERS:
        where = f"livekit.rtc.{module}.{cls}.{method}"
        code = _find_lambda(module, cls, method, lambda c: not c.co_freevars
                            and set(c.co_names) <= {"WhichOneof"})
        excluded = _kind_filter_exclusions(code, probes) if code is not None else None
        _require("livekit", f"the event filter in {where} (by event kind only)",
                 lambda x=excluded: x is not None)  # type: ignore[misc]
        assert code is not None and excluded is not None
        specs[code] = KindFilter(excluded)
    return specs


def _find_lambda(
    module: str, cls: str, method: str, match: Callable[[types.CodeType], bool]
) -> types.CodeType | None:
    """The one lambda in ``livekit.rtc.<module>.<cls>.<method>`` that ``match``es, else None."""
    try:
        fn = getattr(getattr(importlib.import_module(f"livekit.rtc.{module}"), cls), method)
        todo = [fn.__code__]
    except (ImportError, AttributeError):
        return None
    found = []
    while todo:
        code = todo.pop()
        for const in code.co_consts:
            if isinstance(const, types.CodeType):
                if const.co_name == "<lambda>" and match(const):
                    found.append(const)
                todo.append(const)
    return found[0] if len(found) == 1 else None


def _probe_fn(code: types.CodeType, closure: tuple[types.CellType, ...] | None) -> Any:
    return types.FunctionType(code, {"__builtins__": builtins}, "probe", None, closure)


def _routed_spec(
    code: types.CodeType, kind: str, field: str, event_cls: Any, probes: dict[str | None, Any]
) -> RoutedFilter | None:
    """The filter's spec if it acts exactly as one, on every probe; else None."""
    # it reads nothing but the event's kind and the one id field (no global, no other field)
    if set(code.co_names) - {"WhichOneof", kind, field}:
        return None
    try:
        wildcard = bool(_probe_fn(code, (types.CellType(None),))(probes[kind]))
        spec = RoutedFilter(kind, field, wildcard)
        keyed = event_cls()
        setattr(getattr(keyed, kind), field, 7)
        for value in (None, 7, 8):
            fn = _probe_fn(code, (types.CellType(value),))
            for probe_kind, event in probes.items():  # default events: their id field is 0
                if bool(fn(event)) != (probe_kind == kind and value is None and wildcard):
                    return None
            if bool(fn(keyed)) != (value == 7 or (value is None and wildcard)):
                return None
    except Exception:
        return None
    return spec


def _kind_filter_exclusions(
    code: types.CodeType, probes: dict[str | None, Any]
) -> frozenset[str | None] | None:
    try:
        fn = _probe_fn(code, None)
        return frozenset(kind for kind, event in probes.items() if not fn(event))
    except Exception:
        return None


def check_loguru(locks_machinery: Any) -> None:
    """``loguru._locks_machinery`` creates its locks through a ``threading`` module global."""
    _require("loguru", "_locks_machinery.threading", lambda: hasattr(locks_machinery, "threading"))


def check_websocket(websocket_cls: Any) -> None:
    """``websocket.WebSocket._recv(bufsize)``, which the worker's buffered socket overrides."""
    _require("websocket-client", "WebSocket._recv(bufsize)",
             lambda: websocket_cls._recv.__code__.co_varnames[:2] == ("self", "bufsize"))


def check_gevent(greenlet_cls: Any) -> None:
    """gevent ``Greenlet.spawn_tree_locals`` is assignable and inherited (jobs are built on it);
    the hub's ``handle_error`` can be replaced per instance."""

    def spawn_tree_locals_work() -> bool:
        g = greenlet_cls(lambda: None)
        marker: dict[str, Any] = {}
        g.spawn_tree_locals = marker
        return g.spawn_tree_locals is marker

    _require("gevent", "an assignable Greenlet.spawn_tree_locals", spawn_tree_locals_work)
