"""pocketsphinx decoders: one blocking :class:`SphinxDecoder` per native thread at a time,
and a :class:`DecoderPool` that greenlets borrow them from.

A decoder takes ~0.6 s to start (it loads the acoustic and language models) and holds the
GIL all that time (so even in ``to_thread`` the hub stalls while one loads). Decoders are
therefore kept in process-wide pools, one per configuration, shared by every ``STT`` object,
and reused: the process pays each load once. Two guards make reuse safe: the pool hands
each decoder to one greenlet at a time (hub side), and each decoder also has a *real* lock
taken on the decoding thread, so a greenlet that was killed while its ``to_thread`` call
still runs cannot let a second thread into the same decoder.

pocketsphinx holds the GIL inside its C calls (measured here: one ``process_raw`` of a whole
utterance kept the hub from running for 0.3 s per second of audio). So the audio goes in
10 ms pieces and the decoding thread gives the GIL away after each one; the hub then waits
a few ms at worst instead of the whole decode.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import gevent.queue
from gevent import monkey

from ...runtime import real_lock, to_thread

__all__ = [
    "DecoderPool",
    "Recognition",
    "SphinxDecoder",
    "WordInfo",
    "model_files",
    "shared_pool",
]

SAMPLE_RATE = 16000
_FRAME_RATE = 100  # pocketsphinx's default -frate: feature frames per second
_PIECE_BYTES = SAMPLE_RATE // 100 * 2  # 10 ms of int16 audio per process_raw call
_ALT_PRON = re.compile(r"\(\d+\)$")  # "the(2)": second pronunciation of "the"
_FILLERS = {"<s>", "</s>", "<sil>"}
_real_sleep = monkey.get_original("time", "sleep")
# Sleeping (unpatched sleep, on the decoding thread) releases the GIL. With sleep(0) the
# thread often took the GIL straight back (hub lag p99 14-30 ms measured here); a 0.1 ms nap
# lets a waiting hub in (p99 5-10 ms) and costs ~1% of the decoding time.
_GIL_NAP = 0.0001

# Why these settings:
# - fwdflat=False: the second (flat lexicon) search pass runs inside end_utt() in one C call
#   holding the GIL (~0.25 s per utterance measured here); the word accuracy on our test
#   speech was the same without it.
# - bestpath (the lattice search that gives word posteriors, i.e. confidences) also runs in
#   one GIL-holding call, ~5 ms per second of speech: only with word_confidence=True.
_DEFAULT_CONFIG: dict[str, Any] = {
    "samprate": SAMPLE_RATE,
    "loglevel": "FATAL",
    "fwdflat": False,
    "bestpath": False,
}


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
    end_time: float
    words: list[WordInfo] = field(default_factory=list)


class DecodeJob:
    """What a greenlet hands to the decoding thread; ``cancel()`` stops it early."""

    def __init__(self, pcm: bytes) -> None:
        self.pcm = pcm
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True  # a plain attribute: read by the thread between two pieces


class SphinxDecoder:
    """A pocketsphinx ``Decoder`` for 16 kHz mono int16 audio. Methods block; thread-safe."""

    def __init__(self, *, word_confidence: bool = False, **config: Any) -> None:
        import pocketsphinx

        self._lock = real_lock()
        self.word_confidence = word_confidence
        settings = {**_DEFAULT_CONFIG, **model_files(), "bestpath": word_confidence, **config}
        self._decoder = pocketsphinx.Decoder(**settings)

    def decode(self, job: DecodeJob | bytes) -> Recognition:
        """Recognize one utterance of 16 kHz mono little-endian int16 audio.

        Cepstral mean normalisation is live (pocketsphinx's default for incremental input):
        it carries over from the decoder's previous utterance, adapting to the voice.
        """
        if isinstance(job, (bytes, bytearray)):
            job = DecodeJob(bytes(job))
        pcm = memoryview(job.pcm)
        with self._lock:
            dec = self._decoder
            dec.start_utt()
            try:
                for start in range(0, len(pcm), _PIECE_BYTES):
                    if job.cancelled:
                        break
                    dec.process_raw(pcm[start : start + _PIECE_BYTES], False, False)
                    _real_sleep(_GIL_NAP)  # let the hub (and other threads) have the GIL
            finally:
                dec.end_utt()
            if job.cancelled:
                # nobody waits for this result any more (raising would only print a traceback)
                return Recognition("", None, 0.0, 0.0)
            hyp = dec.hyp()
            if hyp is None or not hyp.hypstr:
                return Recognition("", None, 0.0, 0.0)
            words = [
                WordInfo(
                    _ALT_PRON.sub("", seg.word),
                    seg.start_frame / _FRAME_RATE,
                    (seg.end_frame + 1) / _FRAME_RATE,
                    float(seg.prob) if self.word_confidence else None,
                )
                for seg in dec.seg()
                if seg.word not in _FILLERS and not seg.word.startswith(("[", "+"))
            ]
        scores = [w.confidence for w in words if w.confidence is not None]
        confidence = min(1.0, max(0.0, sum(scores) / len(scores))) if scores else None
        return Recognition(
            text=hyp.hypstr,
            confidence=confidence,
            start_time=words[0].start_time if words else 0.0,
            end_time=words[-1].end_time if words else 0.0,
            words=words,
        )


class DecoderPool:
    """Up to ``max_size`` decoders, created on demand off the hub and lent to one greenlet at
    a time. Use from greenlets only (the bookkeeping is not thread-safe, by design)."""

    def __init__(self, max_size: int = 2, **config: Any) -> None:
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        self.max_size = max_size
        self._config = config
        self._idle: gevent.queue.Queue[SphinxDecoder] = gevent.queue.Queue()
        self._created = 0

    @property
    def size(self) -> int:
        return self._created

    def prewarm(self, count: int = 1) -> None:
        """Create decoders ahead of the first utterance (each takes ~0.6 s)."""
        while self._created < min(count, self.max_size):
            self._idle.put(self._create())

    def _create(self) -> SphinxDecoder:
        self._created += 1
        try:
            return to_thread(SphinxDecoder, **self._config)
        except BaseException:  # includes a kill while loading: give the slot back
            self._created -= 1
            raise

    @contextlib.contextmanager
    def decoder(self, timeout: float | None = None) -> Iterator[SphinxDecoder]:
        """Borrow a decoder: an idle one, a new one while under ``max_size``, else wait."""
        try:
            dec = self._idle.get_nowait()
        except gevent.queue.Empty:
            if self._created < self.max_size:
                dec = self._create()
            else:
                try:
                    dec = self._idle.get(timeout=timeout)
                except gevent.queue.Empty:
                    raise TimeoutError(
                        f"no pocketsphinx decoder became free within {timeout} s"
                    ) from None
        try:
            yield dec
        finally:
            self._idle.put(dec)


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
