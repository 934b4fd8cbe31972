"""``plugins.pocketsphinx.STT``: offline US English batch recognition (CMU pocketsphinx)."""

from __future__ import annotations

from typing import Any

from ... import stt
from ...runtime import to_thread
from ...utils.audio import resample
from ._decoder import SAMPLE_RATE, DecodeJob, Recognition, shared_pool

__all__ = ["STT"]

_LANGUAGES = {"en", "en-us", "en_us"}


def _check_language(language: str) -> None:
    if language.lower() not in _LANGUAGES:
        raise ValueError(
            f"pocketsphinx ships a US English model only, not {language!r} (use 'en-US')"
        )


class STT(stt.STT):
    """Batch speech recognition with the model in the pocketsphinx wheel.

    Decoders take ~0.6 s to load, holding the GIL (the hub stalls meanwhile), so they live
    in a process-wide pool shared by every ``STT`` with the same settings: up to
    ``max_decoders`` are lent to one utterance at a time, and more concurrent utterances wait
    for a free one (``decoder_timeout``). Constructing the first ``STT`` of a process loads one
    decoder (``prewarm``): do it in the worker's ``prewarm_fnc`` so no job pays for it.
    Resampling to 16 kHz mono and decoding run in ``syncagents.to_thread``, in 10 ms pieces
    so the hub keeps running (pocketsphinx holds the GIL while it works).

    ``word_confidence=True`` adds pocketsphinx's lattice search, whose word posteriors give
    ``SpeechData.confidence``; it holds the GIL ~5 ms per second of speech at the end of each
    utterance, so it is off by default and ``confidence`` is then 0.0 (unknown).
    For streaming, wrap it: ``stt.StreamAdapter(stt=pocketsphinx.STT(), vad=silero.VAD())``.
    """

    def __init__(
        self,
        language: str = "en-US",
        *,
        max_decoders: int = 2,
        word_confidence: bool = False,
        prewarm: bool = True,
        decoder_timeout: float | None = 30.0,
        **decoder_config: Any,
    ) -> None:
        _check_language(language)
        super().__init__(capabilities=stt.STTCapabilities(streaming=False, interim_results=False))
        self.language = language
        self.decoder_timeout = decoder_timeout
        self._pool = shared_pool(
            max_size=max_decoders, word_confidence=word_confidence, **decoder_config
        )
        if prewarm:
            self._pool.prewarm(1)

    def prewarm(self, count: int = 1) -> None:
        """Make sure ``count`` decoders are loaded (~0.6 s each, stalling the hub: see above)."""
        self._pool.prewarm(count)

    def _recognize(self, frames: list[Any], language: str | None) -> stt.SpeechEvent:
        lang = language or self.language
        _check_language(lang)
        with self._pool.decoder(timeout=self.decoder_timeout) as decoder:
            job = DecodeJob(b"")
            try:
                result: Recognition = to_thread(_decode, decoder, job, frames)
            except BaseException:
                job.cancel()  # a timeout or kill: the thread stops at its next piece
                raise
        alternatives = []
        if result.text:
            alternatives.append(
                stt.SpeechData(
                    text=result.text,
                    language=lang,
                    confidence=result.confidence if result.confidence is not None else 0.0,
                    start_time=result.start_time,
                    end_time=result.end_time,
                )
            )
        return stt.SpeechEvent(type=stt.SpeechEventType.FINAL_TRANSCRIPT, alternatives=alternatives)


def _decode(decoder: Any, job: DecodeJob, frames: list[Any]) -> Recognition:
    # On a native thread: the conversion to 16 kHz mono (any input rates and channel
    # counts, ~1 ms per second of 48 kHz audio), then the search.
    job.pcm = b"".join(bytes(f.data) for f in resample(frames, SAMPLE_RATE, mono=True))
    return decoder.decode(job)  # type: ignore[no-any-return]
