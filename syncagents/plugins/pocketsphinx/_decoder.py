"""pocketsphinx decoders and endpointers, the pool that lends decoders to greenlets, and the
capacity limit on decoding.

Decoding goes through pocketsphinx's C API with ``ctypes`` (:mod:`._capi`), which releases
the GIL around each call: a decoder loads (~0.5 s) and searches on a native thread
(``syncagents.to_thread``) truly in parallel with the hub. Through the Cython binding (the
fallback when the C API is not available) the GIL stays held inside every call, so that path
feeds audio 10 ms at a time and gives the GIL away in between.

A decoder holds ~95 MB of models and takes ~0.5 s to load, so decoders live in process-wide
pools, one per configuration, shared by every ``STT`` object, and are reused: the process
pays each load once. Two guards make reuse safe: the pool hands each decoder to one greenlet
at a time (hub side), and each decoder also has a *real* lock taken on the decoding thread,
so a greenlet that was killed while its ``to_thread`` call still runs cannot let a second
thread into the same decoder.

Cepstral mean normalisation (CMN) is pocketsphinx's estimate of the channel (microphone,
voice, level). It starts from a generic guess and only moves at the end of each utterance, so
a decoder's first utterances are recognized worse than later ones. Each pool remembers the
latest estimate (``warm_cmn``) and a decoder that has not heard anything yet starts from it;
a stream carries its own speaker's estimate from one utterance (and decoder) to the next.

All decodes share one :class:`~syncagents.runtime.CapacityLimiter` (``decode_limiter``), one
slot per CPU core by default: a decode keeps a core busy, so more at once only queue in the
thread pool, where they would delay other plugins' short calls.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import gevent.queue
from gevent import monkey

from ...runtime import CapacityLimiter, to_thread
from ._capi import CApi, capi

__all__ = [
    "DecoderPool",
    "Endpointer",
    "Recognition",
    "SphinxDecoder",
    "WordInfo",
    "decode_limiter",
    "model_files",
    "shared_pool",
]

SAMPLE_RATE = 16000
FRAME_RATE = 100  # pocketsphinx's default -frate: feature frames per second
_CYTHON_PIECE = SAMPLE_RATE // 100 * 2  # 10 ms of int16 audio per GIL-holding call
_ALT_PRON = re.compile(r"\(\d+\)$")  # "the(2)": second pronunciation of "the"
_FILLERS = {"<s>", "</s>", "<sil>"}
_real_sleep = monkey.get_original("time", "sleep")
_RLock = monkey.get_original("_thread", "RLock")
# Cython path only: sleeping (unpatched sleep, on the decoding thread) releases the GIL. With
# sleep(0) the thread often took the GIL straight back (hub lag p99 14-30 ms measured here); a
# 0.1 ms nap lets a waiting hub in (p99 5-10 ms) and costs ~1% of the decoding time.
_GIL_NAP = 0.0001

# Why these settings:
# - fwdflat=False: the second (flat lexicon) search pass runs inside end_utt() (~0.25 s per
#   utterance measured here), delaying every final transcript; the word accuracy on our test
#   speech was the same without it.
# - bestpath (the lattice search that gives word posteriors, i.e. confidences) also runs in
#   end_utt(), ~5 ms per second of speech: only with word_confidence=True.
_DEFAULT_CONFIG: dict[str, Any] = {
    "samprate": SAMPLE_RATE,
    "loglevel": "FATAL",
    "fwdflat": False,
    "bestpath": False,
}

#: every decode (batch slices, stream steps) runs through this limiter; ``STT(max_concurrency=)``
#: changes its total for the whole process
decode_limiter = CapacityLimiter(os.cpu_count() or 1, name="pocketsphinx")


def model_files() -> dict[str, str]:
    """Paths of the US English model shipped in the pocketsphinx wheel."""
    import pocketsphinx

    return {
        "hmm": pocketsphinx.get_model_path("en-us/en-us"),
        "lm": pocketsphinx.get_model_path("en-us/en-us.lm.bin"),
        "dict": pocketsphinx.get_model_path("en-us/cmudict-en-us.dict"),
    }


def missing_model_files() -> list[str]:
    return [path for path in model_files().values() if not os.path.exists(path)]


@dataclass
class WordInfo:
    word: str
    start_time: float
    end_time: float
    confidence: float | None


@dataclass
class Recognition:
    text: str
    confidence: float | None
    """Mean word posterior; None without ``word_confidence``."""
    start_time: float
    """Seconds from the start of the utterance's audio."""
    end_time: float
    words: list[WordInfo] = field(default_factory=list)


# -- the two ways to drive a decoder -------------------------------------------------------------

_Segment = tuple[str, int, int, float]  # word, first frame, last frame (inclusive), posterior


class _NativeDecoder:
    """A decoder through the C API: no GIL held inside pocketsphinx."""

    holds_gil = False

    def __init__(self, api: CApi, settings: dict[str, Any]) -> None:
        self._api = api
        config = api.ps_config_parse_json(
            None, json.dumps(settings, ensure_ascii=False).encode("utf-8")
        )
        if not config:
            raise RuntimeError(f"pocketsphinx rejected the decoder settings {settings!r}")
        try:
            self._ps = api.ps_init(config)  # the decoder keeps its own reference to config
        finally:
            api.ps_config_free(config)
        if not self._ps:
            raise RuntimeError("pocketsphinx could not load its model (details on stderr)")
        self._logmath = api.ps_get_logmath(self._ps)

    def start_utt(self) -> None:
        if self._api.ps_start_utt(self._ps) < 0:
            raise RuntimeError("pocketsphinx could not start an utterance")

    def process(self, pcm: bytes) -> None:
        if self._api.ps_process_raw(self._ps, pcm, len(pcm) // 2, 0, 0) < 0:
            raise RuntimeError("pocketsphinx failed to process audio")

    def end_utt(self) -> None:
        self._api.ps_end_utt(self._ps)

    def hyp(self) -> str:
        score = ctypes.c_int32()
        text = self._api.ps_get_hyp(self._ps, ctypes.byref(score))
        return text.decode("utf-8", "replace") if text else ""

    def segments(self) -> list[_Segment]:
        api = self._api
        out: list[_Segment] = []
        sf, ef = ctypes.c_int(), ctypes.c_int()
        a, b, c = ctypes.c_int32(), ctypes.c_int32(), ctypes.c_int32()
        seg = api.ps_seg_iter(self._ps)
        while seg:  # ps_seg_next frees the iterator when it returns NULL
            word = api.ps_seg_word(seg).decode("utf-8", "replace")
            api.ps_seg_frames(seg, ctypes.byref(sf), ctypes.byref(ef))
            prob = api.ps_seg_prob(seg, ctypes.byref(a), ctypes.byref(b), ctypes.byref(c))
            out.append((word, sf.value, ef.value, api.logmath_exp(self._logmath, prob)))
            seg = api.ps_seg_next(seg)
        return out

    def get_cmn(self) -> str:
        value = self._api.ps_get_cmn(self._ps, 0)
        return value.decode("ascii") if value else ""

    def set_cmn(self, cmn: str) -> None:
        self._api.ps_set_cmn(self._ps, cmn.encode("ascii"))

    def free(self) -> None:
        if self._ps:
            self._api.ps_free(self._ps)
            self._ps = None


class _CythonDecoder:
    """The fallback: the wheel's Cython binding, which holds the GIL inside each call."""

    holds_gil = True

    def __init__(self, settings: dict[str, Any]) -> None:
        import pocketsphinx

        self._dec = pocketsphinx.Decoder(**settings)

    def start_utt(self) -> None:
        self._dec.start_utt()

    def process(self, pcm: bytes) -> None:
        view = memoryview(pcm)
        for start in range(0, len(view), _CYTHON_PIECE):
            self._dec.process_raw(view[start : start + _CYTHON_PIECE], False, False)
            _real_sleep(_GIL_NAP)  # let the hub (and other threads) have the GIL

    def end_utt(self) -> None:
        self._dec.end_utt()

    def hyp(self) -> str:
        hyp = self._dec.hyp()
        return hyp.hypstr if hyp is not None and hyp.hypstr else ""

    def segments(self) -> list[_Segment]:
        return [(s.word, s.start_frame, s.end_frame, float(s.prob)) for s in self._dec.seg()]

    def get_cmn(self) -> str:
        return str(self._dec.get_cmn())

    def set_cmn(self, cmn: str) -> None:
        self._dec.set_cmn(cmn)

    def free(self) -> None:
        self._dec = None


class SphinxDecoder:
    """One pocketsphinx decoder for 16 kHz mono little-endian int16 audio.

    Every method blocks and belongs on a native thread (``to_thread``); each takes the
    decoder's real (re-entrant) lock, which a caller may also hold around several calls
    (``with decoder.lock:``). An utterance is ``begin()``, any number of ``feed()`` (with
    ``partial()`` hypotheses in between), then ``finish()``.
    """

    def __init__(self, *, word_confidence: bool = False, **config: Any) -> None:
        self.lock = _RLock()
        self.word_confidence = word_confidence
        settings = {**_DEFAULT_CONFIG, **model_files(), "bestpath": word_confidence, **config}
        api = capi()
        self._impl: _NativeDecoder | _CythonDecoder = (
            _NativeDecoder(api, settings) if api is not None else _CythonDecoder(settings)
        )
        self.cmn = self._impl.get_cmn()
        """The cepstral mean after the last utterance (pocketsphinx's generic one at first)."""
        self.utterances = 0
        """Utterances finished with some speech recognized: 0 means CMN is still generic."""
        self._in_utt = False

    @property
    def native(self) -> bool:
        """True when pocketsphinx runs without the GIL (through its C API)."""
        return not self._impl.holds_gil

    def begin(self, cmn: str | None = None) -> None:
        """Start an utterance, from cepstral mean ``cmn`` if given (see the module doc)."""
        with self.lock:
            if self._in_utt:  # left open by a caller that was killed mid-utterance
                self._impl.end_utt()
                self._in_utt = False
            if cmn:
                self._impl.set_cmn(cmn)
            self._impl.start_utt()
            self._in_utt = True

    def feed(self, pcm: bytes) -> None:
        """Decode more audio of the current utterance."""
        with self.lock:
            if pcm:
                self._impl.process(pcm)

    def partial(self) -> str:
        """The best hypothesis so far (cheap: a backtrace, no extra search)."""
        with self.lock:
            return self._impl.hyp()

    def finish(self) -> Recognition:
        """End the utterance: its final hypothesis, words and times (seconds from its start)."""
        with self.lock:
            self._impl.end_utt()
            self._in_utt = False
            self.cmn = self._impl.get_cmn()  # end_utt folded this utterance into the mean
            text = self._impl.hyp()
            if not text:
                return Recognition("", None, 0.0, 0.0)
            self.utterances += 1
            words = [
                WordInfo(
                    _ALT_PRON.sub("", word),
                    start / FRAME_RATE,
                    (end + 1) / FRAME_RATE,
                    prob if self.word_confidence else None,
                )
                for word, start, end, prob in self._impl.segments()
                if word not in _FILLERS and not word.startswith(("[", "+"))
            ]
        scores = [w.confidence for w in words if w.confidence is not None]
        confidence = min(1.0, max(0.0, sum(scores) / len(scores))) if scores else None
        return Recognition(
            text=text,
            confidence=confidence,
            start_time=words[0].start_time if words else 0.0,
            end_time=words[-1].end_time if words else 0.0,
            words=words,
        )

    def decode(self, pcm: bytes, cmn: str | None = None) -> Recognition:
        """A whole utterance in one call (holds a core for ~0.1-0.3 s per second of audio)."""
        with self.lock:
            self.begin(cmn)
            self.feed(pcm)
            return self.finish()

    def close(self) -> None:
        with self.lock:
            self._impl.free()


# -- endpointing ---------------------------------------------------------------------------------

_pyapi: Any = None


def _endpointer_api() -> Any:
    """The C endpointer functions, called *with* the GIL held (``ctypes.PyDLL``).

    An endpointer step (WebRTC VAD on 30 ms of audio) takes microseconds, so it runs inline
    in a greenlet; releasing the GIL around it, as ``ctypes.CDLL`` does, would let the hub
    thread queue behind whatever other thread takes the GIL meanwhile (up to the 5 ms switch
    interval) for nothing.
    """
    global _pyapi
    if _pyapi is None:
        if capi() is None:
            _pyapi = False
        else:
            from pocketsphinx import _pocketsphinx

            _pyapi = CApi(ctypes.PyDLL(_pocketsphinx.__file__))
    return _pyapi or None


class Endpointer:
    """pocketsphinx's endpointer: WebRTC voice activity detection over 30 ms frames, with a
    decision window (speech starts or ends once ``ratio`` of the last ``window`` seconds of
    frames agree). It hands speech back delayed by the window, from where the speech began,
    so a decoder fed with its output sees each utterance whole.

    ``mode``: 0 (loose) to 3 (strict) classification of a frame as speech. Microseconds per
    frame, GIL held: call it from greenlets. Not thread-safe (one stream each).
    """

    def __init__(self, window: float = 0.3, ratio: float = 0.9, mode: int = 0) -> None:
        self._api = api = _endpointer_api()
        if api is not None:
            self._ep = api.ps_endpointer_init(window, ratio, mode, SAMPLE_RATE, 0.03)
            if not self._ep:
                raise ValueError(f"invalid endpointer settings: window={window}, ratio={ratio}")
            self.frame_bytes = int(api.ps_vad_frame_size(api.ps_endpointer_vad(self._ep))) * 2
            self._out_nsamp = ctypes.c_size_t()
        else:
            import pocketsphinx

            self._py = pocketsphinx.Endpointer(
                window=window, ratio=ratio, vad_mode=mode, sample_rate=SAMPLE_RATE
            )
            self.frame_bytes = int(self._py.frame_bytes)

    def process(self, frame: bytes) -> bytes | None:
        """One frame of exactly ``frame_bytes``: the speech frame it releases, or None."""
        if self._api is None:
            out = self._py.process(frame)
            return bytes(out) if out is not None else None
        ptr = self._api.ps_endpointer_process(self._ep, frame)
        return ctypes.string_at(ptr, self.frame_bytes) if ptr else None

    def end_stream(self, tail: bytes) -> bytes:
        """The end of the audio (``tail``: less than a frame): the speech still held back."""
        if self._api is None:
            out = self._py.end_stream(tail)
            return bytes(out) if out is not None else b""
        ptr = self._api.ps_endpointer_end_stream(
            self._ep, tail, len(tail) // 2, ctypes.byref(self._out_nsamp)
        )
        return ctypes.string_at(ptr, self._out_nsamp.value * 2) if ptr else b""

    @property
    def in_speech(self) -> bool:
        if self._api is None:
            return bool(self._py.in_speech)
        return bool(self._api.ps_endpointer_in_speech(self._ep))

    @property
    def speech_start(self) -> float:
        """Seconds from the start of the stream to where the last speech began."""
        if self._api is None:
            return float(self._py.speech_start)
        return float(self._api.ps_endpointer_speech_start(self._ep))

    @property
    def speech_end(self) -> float:
        """Seconds from the start of the stream to where the last speech ended."""
        if self._api is None:
            return float(self._py.speech_end)
        return float(self._api.ps_endpointer_speech_end(self._ep))

    def close(self) -> None:
        if self._api is not None and self._ep:
            self._api.ps_endpointer_free(self._ep)
            self._ep = None


# -- the pool ------------------------------------------------------------------------------------


class DecoderPool:
    """Up to ``max_size`` decoders, created on demand off the hub and lent to one greenlet at
    a time. Use from greenlets only (the bookkeeping is not thread-safe, by design)."""

    def __init__(self, max_size: int = 2, **config: Any) -> None:
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        self.max_size = max_size
        self.warm_cmn: str | None = None
        """The latest cepstral mean any of these decoders ended an utterance with."""
        self._config = config
        self._idle: gevent.queue.Queue[SphinxDecoder] = gevent.queue.Queue()
        self._created = 0

    @property
    def size(self) -> int:
        return self._created

    @property
    def idle(self) -> int:
        return self._idle.qsize()

    def prewarm(self, count: int = 1) -> None:
        """Create decoders ahead of the first utterance (each takes ~0.5 s on a thread)."""
        while self._created < min(count, self.max_size):
            self._idle.put(self._create())

    def _create(self) -> SphinxDecoder:
        self._created += 1
        try:
            return to_thread(SphinxDecoder, **self._config)
        except BaseException:  # includes a kill while loading: give the slot back
            self._created -= 1
            raise

    def acquire(self, timeout: float | None = None) -> SphinxDecoder:
        """Borrow a decoder: an idle one, a new one while under ``max_size``, else wait.
        Give it back with :meth:`release`."""
        try:
            return self._idle.get_nowait()
        except gevent.queue.Empty:
            pass
        if self._created < self.max_size:
            return self._create()
        try:
            return self._idle.get(timeout=timeout)
        except gevent.queue.Empty:
            raise TimeoutError(
                f"no pocketsphinx decoder became free within {timeout} s "
                f"(max_decoders={self.max_size})"
            ) from None

    def release(self, decoder: SphinxDecoder) -> None:
        if decoder.utterances and decoder.cmn:
            self.warm_cmn = decoder.cmn
        self._idle.put(decoder)

    def cmn_for(self, decoder: SphinxDecoder) -> str | None:
        """The cepstral mean a decoder should start its next utterance from, when the caller
        has none of its own: the pool's latest if this decoder has not heard speech yet."""
        return self.warm_cmn if not decoder.utterances else None

    def decoder(self, timeout: float | None = None) -> _Lease:
        """``with pool.decoder() as dec:`` — :meth:`acquire`, then :meth:`release`."""
        return _Lease(self, timeout)


class _Lease:
    def __init__(self, pool: DecoderPool, timeout: float | None) -> None:
        self._pool = pool
        self._timeout = timeout
        self._decoder: SphinxDecoder | None = None

    def __enter__(self) -> SphinxDecoder:
        self._decoder = self._pool.acquire(self._timeout)
        return self._decoder

    def __exit__(self, *exc: object) -> None:
        if self._decoder is not None:
            self._pool.release(self._decoder)
            self._decoder = None


_pools: dict[tuple[Any, ...], DecoderPool] = {}


def shared_pool(max_size: int = 2, **config: Any) -> DecoderPool:
    """The process-wide pool for this decoder configuration (greenlets only).

    A later request for the same configuration with a larger ``max_size`` raises the bound.
    """
    key = tuple(sorted((k, repr(v)) for k, v in config.items()))
    pool = _pools.get(key)
    if pool is None:
        pool = _pools[key] = DecoderPool(max_size=max_size, **config)
    elif max_size > pool.max_size:
        pool.max_size = max_size
    return pool


def slices(pcm: bytes, size: int) -> Iterator[bytes]:
    """``pcm`` cut into pieces of at most ``size`` bytes (an even number)."""
    size -= size % 2
    for start in range(0, len(pcm), size):
        yield pcm[start : start + size]
