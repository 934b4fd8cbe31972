"""pocketsphinx's C API through ``ctypes``, so that decoding runs without the GIL.

The Cython binding that ships in the pocketsphinx wheel keeps the GIL inside every C call:
loading a decoder (~0.5 s) or decoding a second of speech (~0.1-0.3 s) then stops every
other Python thread, the gevent hub included, even from ``syncagents.to_thread``. The same
wheel's extension module also exports the library's public C API (``ps_init``,
``ps_process_raw``, ``ps_endpointer_*``, … from ``pocketsphinx.h``); ``ctypes`` releases the
GIL around each foreign call, so through it a decoder loads and searches truly in parallel
with the hub and with other decoders.

Only functions of the documented C API are used, with the signatures of pocketsphinx 5's
headers. If a future wheel stops exporting them, :func:`capi` returns ``None`` and the plugin
falls back to the Cython binding (and its GIL). pocketsphinx logs from C straight to stderr
(no Python callback), so calling it without the GIL is safe.
"""

from __future__ import annotations

import ctypes
from typing import Any

__all__ = ["CApi", "capi"]

_vp = ctypes.c_void_p
_int = ctypes.c_int
_i32 = ctypes.c_int32
_dbl = ctypes.c_double
_str = ctypes.c_char_p

# name: (result type, argument types), as declared in pocketsphinx 5's headers
_SIGNATURES: dict[str, tuple[Any, list[Any]]] = {
    # configuration and decoder (pocketsphinx.h)
    "ps_config_parse_json": (_vp, [_vp, _str]),
    "ps_config_free": (_int, [_vp]),
    "ps_init": (_vp, [_vp]),
    "ps_free": (_int, [_vp]),
    "ps_start_utt": (_int, [_vp]),
    "ps_process_raw": (_int, [_vp, _str, ctypes.c_size_t, _int, _int]),
    "ps_end_utt": (_int, [_vp]),
    "ps_get_hyp": (_str, [_vp, ctypes.POINTER(_i32)]),
    "ps_get_cmn": (_str, [_vp, _int]),
    "ps_set_cmn": (_int, [_vp, _str]),
    "ps_get_logmath": (_vp, [_vp]),
    "ps_seg_iter": (_vp, [_vp]),
    "ps_seg_next": (_vp, [_vp]),
    "ps_seg_word": (_str, [_vp]),
    "ps_seg_frames": (None, [_vp, ctypes.POINTER(_int), ctypes.POINTER(_int)]),
    "ps_seg_prob": (_i32, [_vp, ctypes.POINTER(_i32), ctypes.POINTER(_i32), ctypes.POINTER(_i32)]),
    "logmath_exp": (_dbl, [_vp, _int]),
    # endpointer (pocketsphinx/endpointer.h, vad.h)
    "ps_endpointer_init": (_vp, [_dbl, _dbl, _int, _int, _dbl]),
    "ps_endpointer_free": (_int, [_vp]),
    "ps_endpointer_vad": (_vp, [_vp]),
    "ps_vad_frame_size": (ctypes.c_size_t, [_vp]),
    "ps_endpointer_process": (_vp, [_vp, _str]),
    "ps_endpointer_end_stream": (
        _vp, [_vp, _str, ctypes.c_size_t, ctypes.POINTER(ctypes.c_size_t)]
    ),
    "ps_endpointer_in_speech": (_int, [_vp]),
    "ps_endpointer_speech_start": (_dbl, [_vp]),
    "ps_endpointer_speech_end": (_dbl, [_vp]),
}


class CApi:
    """The typed C functions (attributes named as in C). Calls release the GIL."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        for name, (restype, argtypes) in _SIGNATURES.items():
            fn = getattr(lib, name)  # AttributeError when the wheel does not export it
            fn.restype = restype
            fn.argtypes = argtypes
            setattr(self, name, fn)

    def __getattr__(self, name: str) -> Any:  # for type checkers: set in __init__
        raise AttributeError(name)


_capi: CApi | None = None
_loaded = False


def capi() -> CApi | None:
    """The C API of the pocketsphinx extension already imported, or None if unavailable."""
    global _capi, _loaded
    if not _loaded:
        _loaded = True
        try:
            from pocketsphinx import _pocketsphinx

            # the extension is loaded already: dlopen hands back the same library image, so
            # these functions share their global state (logging) with the Cython binding
            _capi = CApi(ctypes.CDLL(_pocketsphinx.__file__))
        except (ImportError, OSError, AttributeError):
            _capi = None
    return _capi
