"""ctypes binding to the espeak-ng library shipped in the ``espeakng-loader`` wheel.

espeak-ng keeps global state (one output callback, one current voice, one set of
parameters), so the process holds a single :class:`EspeakEngine` and every synthesis runs
under one *real* lock: calls arrive on ``to_thread`` workers (native threads), where a gevent
lock must not be used.
"""

from __future__ import annotations

import ctypes
from typing import Any

import numpy as np

from ...runtime import real_lock

__all__ = ["EspeakEngine", "EspeakError", "engine"]

# speak_lib.h
_AUDIO_OUTPUT_SYNCHRONOUS = 0x02
_ESPEAK_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_ESPEAK_RATE = 1
_EE_OK = 0
_EE_NOT_FOUND = 2
_RATE_MIN, _RATE_MAX = 80, 450

# int SynthCallback(short *wav, int numsamples, espeak_EVENT *events)
_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


class EspeakError(RuntimeError):
    pass


class EspeakEngine:
    """The process-wide espeak-ng instance. :meth:`synthesize` is thread-safe and blocking."""

    def __init__(self) -> None:
        self._lock = real_lock()
        self._lib: Any = None
        self._sample_rate = 0
        self._voice: str | None = None
        self._rate: int | None = None
        # filled by the C callback during one espeak_Synth call, under self._lock
        self._chunks: list[np.ndarray] = []
        # keep a reference: ctypes callbacks are freed with their Python object
        self._callback = _SynthCallback(self._on_audio)

    def prepare(self, voice: str) -> int:
        """Load the library (once) and check ``voice``; return the output sample rate.

        Blocking (the first call loads espeak-ng's data): call it through ``to_thread``.
        Raises ``ValueError`` when espeak-ng has no voice of that name.
        """
        with self._lock:
            self._ensure_initialized()
            self._select(voice, None)
            return self._sample_rate

    def _ensure_initialized(self) -> None:
        if self._lib is not None:
            return
        try:
            import espeakng_loader
        except ImportError as e:  # pragma: no cover - depends on the install extra
            raise EspeakError(
                "the espeak plugin needs espeakng-loader: pip install 'syncagents[espeak]'"
            ) from e
        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p,  # text
            ctypes.c_size_t,  # size (bytes, including the terminating NUL)
            ctypes.c_uint,  # position
            ctypes.c_int,  # position type
            ctypes.c_uint,  # end position
            ctypes.c_uint,  # flags
            ctypes.c_void_p,  # unique identifier out
            ctypes.c_void_p,  # user data
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Synchronize.argtypes = []
        lib.espeak_Synchronize.restype = ctypes.c_int
        data_path = espeakng_loader.get_data_path().encode()
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path, 0)
        if rate <= 0:
            raise EspeakError(f"espeak_Initialize failed ({rate})")
        lib.espeak_SetSynthCallback(self._callback)
        self._lib = lib
        self._sample_rate = rate

    def _on_audio(self, wav: Any, num_samples: int, _events: Any) -> int:
        # Runs on the synthesizing (native) thread, inside espeak_Synth.
        if num_samples > 0 and wav:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(num_samples,)).copy())
        return 0  # 0 = continue

    def _select(self, voice: str, rate: int | None) -> None:
        if voice != self._voice:
            err = self._lib.espeak_SetVoiceByName(voice.encode())
            if err != _EE_OK:
                self._voice = None
                if err == _EE_NOT_FOUND:
                    raise ValueError(f"espeak-ng has no voice named {voice!r}")
                raise EspeakError(f"espeak_SetVoiceByName({voice!r}) failed ({err})")
            self._voice = voice
            self._rate = None  # a voice change resets the speaking rate
        if rate is not None and rate != self._rate:
            err = self._lib.espeak_SetParameter(_ESPEAK_RATE, rate, 0)
            if err != _EE_OK:
                raise EspeakError(f"espeak_SetParameter(rate={rate}) failed ({err})")
            self._rate = rate

    def synthesize(self, text: str, voice: str, rate: int) -> np.ndarray:
        """Speak ``text``; return mono int16 samples at the rate :meth:`prepare` returned."""
        check_rate(rate)
        data = text.encode("utf-8")
        with self._lock:
            self._ensure_initialized()
            self._select(voice, rate)
            self._chunks = []
            try:
                err = self._lib.espeak_Synth(
                    data, len(data) + 1, 0, _POS_CHARACTER, 0, _ESPEAK_CHARS_UTF8, None, None
                )
                if err != _EE_OK:
                    raise EspeakError(f"espeak_Synth failed ({err})")
                self._lib.espeak_Synchronize()
                chunks = self._chunks
            finally:
                self._chunks = []
        if not chunks:
            return np.zeros(0, dtype=np.int16)
        return np.concatenate(chunks)


def check_rate(rate: int) -> None:
    if not _RATE_MIN <= rate <= _RATE_MAX:
        raise ValueError(
            f"espeak rate must be {_RATE_MIN}..{_RATE_MAX} words per minute, not {rate}"
        )


engine = EspeakEngine()
