"""``plugins.pocketsphinx.STT``: offline US English recognition (CMU pocketsphinx), batch and
streaming."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import gevent
import gevent.event

from ... import stt
from ...runtime import to_thread
from ...stt.stt import new_request_id
from ...utils.audio import Resampler, resample
from ._decoder import (
    SAMPLE_RATE,
    DecoderPool,
    Endpointer,
    Recognition,
    SphinxDecoder,
    decode_limiter,
    shared_pool,
    slices,
)
from ._stream import Out, Segmenter, UtteranceDecoder

__all__ = ["STT"]

_LANGUAGES = {"en", "en-us", "en_us"}
_BYTES_PER_SECOND = SAMPLE_RATE * 2


def _check_language(language: str) -> None:
    if language.lower() not in _LANGUAGES:
        raise ValueError(
            f"pocketsphinx ships a US English model only, not {language!r} (use 'en-US')"
        )


class STT(stt.STT):
    """Speech recognition with the model in the pocketsphinx wheel, batch and streaming.

    **Streaming** (``stream()``, what ``VoiceAssistant`` uses): pocketsphinx's own endpointer
    (WebRTC voice activity detection) finds the utterances, and each is decoded *while the
    user speaks*, in steps of at most ``max_slice`` seconds of audio on a native thread. The
    stream yields START_OF_SPEECH, INTERIM_TRANSCRIPT (the hypothesis so far, every
    ``interim_interval`` seconds of speech), then FINAL_TRANSCRIPT and END_OF_SPEECH as soon
    as the endpointer hears ``endpointing_window`` seconds of (mostly) silence: at that point
    only the last frames remain to decode, so the final follows within a few ms. No VAD or
    ``stt.StreamAdapter`` is needed. ``flush()`` and ``end_input()`` end an utterance in
    progress at once (its FINAL_TRANSCRIPT and END_OF_SPEECH follow); after a flush the
    endpointer starts afresh on the audio that follows.

    **Batch** (``recognize()``): the whole audio, decoded in slices of ``max_slice`` seconds.

    **Decoders**: each holds ~95 MB of models and takes ~0.5 s to load, so they live in a
    process-wide pool shared by every ``STT`` with the same settings and are lent to one
    utterance at a time: up to ``max_decoders`` (default: two per CPU core), created on
    demand, loaded on a native thread (pocketsphinx's C API is called without the GIL, so the
    hub keeps running meanwhile). More utterances at once wait for a free decoder
    (``decoder_timeout``), their audio buffered. Constructing the first ``STT`` of a process
    loads one decoder (``prewarm``): do it in the worker's ``prewarm_fnc`` so no job pays for
    it. A reused decoder is *warm*: its cepstral normalisation (pocketsphinx's estimate of
    the channel) has adapted, which improves recognition; a stream also carries its
    speaker's estimate from one utterance to the next.

    **Capacity**: every decode step of every ``STT`` in the process goes through one limiter
    of ``max_concurrency`` slots (default: the number of CPU cores; setting it here changes it
    for the process), so decoding never takes more of ``syncagents.to_thread``'s threads
    than the cores can serve and other plugins' calls (VAD windows) find a thread. Size that
    pool accordingly (``syncagents.runtime.set_thread_pool_size``: at least the sum of the
    plugins' limits plus a few threads of headroom).

    ``word_confidence=True`` adds pocketsphinx's lattice search, whose word posteriors give
    ``SpeechData.confidence`` (~5 ms per second of speech at the end of each utterance); off
    by default, and ``confidence`` is then 0.0 (unknown). Other keyword arguments are
    pocketsphinx decoder settings (e.g. ``cmninit="41,-5,-0.1"``, ``lw=7.0``).
    """

    def __init__(
        self,
        language: str = "en-US",
        *,
        max_decoders: int | None = None,
        max_concurrency: int | None = None,
        word_confidence: bool = False,
        prewarm: bool = True,
        decoder_timeout: float | None = 30.0,
        interim_results: bool = True,
        interim_interval: float = 0.3,
        endpointing_window: float = 0.3,
        vad_mode: int = 0,
        max_slice: float = 0.5,
        max_utterance: float = 30.0,
        **decoder_config: Any,
    ) -> None:
        _check_language(language)
        super().__init__(
            capabilities=stt.STTCapabilities(streaming=True, interim_results=interim_results)
        )
        if max_concurrency is not None:
            decode_limiter.total = max_concurrency
        if max_decoders is None:
            max_decoders = max(2, 2 * (os.cpu_count() or 1))
        if max_slice <= 0 or interim_interval <= 0 or max_utterance <= 0:
            raise ValueError("max_slice, interim_interval and max_utterance must be positive")
        self.language = language
        self.decoder_timeout = decoder_timeout
        self.interim_interval = interim_interval
        self.endpointing_window = endpointing_window
        self.vad_mode = vad_mode
        self.max_slice = max_slice
        self.max_utterance = max_utterance
        Endpointer(window=endpointing_window, mode=vad_mode).close()  # bad settings fail here
        self._pool: DecoderPool = shared_pool(
            max_size=max_decoders, word_confidence=word_confidence, **decoder_config
        )
        if prewarm:
            self._pool.prewarm(1)

    @property
    def max_concurrency(self) -> int:
        """Decode steps allowed at once in this process (all pocketsphinx STTs share it)."""
        return decode_limiter.total

    def prewarm(self, count: int = 1) -> None:
        """Make sure ``count`` decoders are loaded (~0.5 s each, on a native thread)."""
        self._pool.prewarm(count)

    # -- batch ---------------------------------------------------------------------------------

    def _recognize(self, frames: list[Any], language: str | None) -> stt.SpeechEvent:
        lang = language or self.language
        _check_language(lang)
        pcm: bytes = to_thread(_to_pcm, frames) if frames else b""
        with self._pool.decoder(timeout=self.decoder_timeout) as decoder:
            result = self._decode_all(decoder, pcm)
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

    def _decode_all(self, decoder: SphinxDecoder, pcm: bytes) -> Recognition:
        # One limiter slot per slice, not per utterance: a long batch decode takes turns with
        # the streams' steps instead of holding a core's slot for seconds. A timeout or kill
        # between slices stops the decode there (the decoder's next begin() closes it).
        decode_limiter.run(decoder.begin, self._pool.cmn_for(decoder))
        for piece in slices(pcm, int(self.max_slice * _BYTES_PER_SECOND)):
            decode_limiter.run(decoder.feed, piece)
        return decode_limiter.run(decoder.finish)

    # -- streaming -----------------------------------------------------------------------------

    def _stream(self, frames: Iterator[Any], language: str | None) -> Iterator[stt.SpeechEvent]:
        lang = language or self.language
        _check_language(lang)
        endpointer = Endpointer(window=self.endpointing_window, mode=self.vad_mode)
        segmenter = Segmenter(endpointer)
        utterances = UtteranceDecoder(
            segmenter.ops,
            interim_interval=self.interim_interval,
            max_slice=self.max_slice,
            max_utterance=self.max_utterance,
            interim=self.capabilities.interim_results,
        )
        inbox: list[bytes] = []
        failed: list[Exception] = []  # the reader's error, re-raised to the consumer
        input_ended = gevent.event.Event()
        wake = gevent.event.Event()

        def read() -> None:
            # frames arrive while a decode step runs: this greenlet collects them, so each
            # step then takes everything that came meanwhile in one go
            converter = _To16k()
            try:
                for frame in frames:
                    inbox.append(converter.push(frame))
                    wake.set()
                inbox.append(converter.flush())
            except Exception as exc:  # e.g. a frame that is not audio
                failed.append(exc)
            finally:
                input_ended.set()
                wake.set()

        reader = gevent.spawn(read)
        decoder: SphinxDecoder | None = None
        request_id = ""
        try:
            while True:
                if failed:
                    raise failed[0]
                if inbox:
                    pcm = b"".join(inbox)
                    inbox.clear()
                    segmenter.push(pcm)
                elif input_ended.is_set() and not segmenter.ended:
                    segmenter.end()
                if segmenter.needs_decoder:
                    if decoder is None:
                        decoder = self._pool.acquire(timeout=self.decoder_timeout)
                        utterances.decoder = decoder
                        utterances.default_cmn = self._pool.warm_cmn
                    step = decode_limiter.run(utterances.step)
                    for out in step.events:
                        if out.kind == "start":
                            request_id = new_request_id()
                        event = self._event(out, lang, request_id)
                        if event is not None:
                            yield event
                    if step.release_decoder:
                        self._pool.release(decoder)
                        decoder = utterances.decoder = None
                    continue  # more audio may have come meanwhile: take it before waiting
                if segmenter.ended:
                    break
                if not inbox and not input_ended.is_set():
                    wake.clear()  # no switch between the check above and the wait
                    wake.wait()
        finally:
            reader.kill(block=False)
            if decoder is not None:
                # killed or closed mid-utterance: the decoder's next begin() ends it (and
                # waits, on its real lock, for a step still running on a thread)
                self._pool.release(decoder)
            endpointer.close()

    def _event(self, out: Out, language: str, request_id: str) -> stt.SpeechEvent | None:
        """The SpeechEvent for one decoder output (None for a final with no words in it:
        noise, a cough; as with ``stt.StreamAdapter``, only START/END_OF_SPEECH then)."""
        kind = stt.SpeechEventType
        if out.kind == "start":
            return stt.SpeechEvent(kind.START_OF_SPEECH, request_id=request_id)
        if out.kind == "end":
            return stt.SpeechEvent(kind.END_OF_SPEECH, request_id=request_id)
        if out.kind == "interim":
            data = stt.SpeechData(text=out.text, language=language)
            return stt.SpeechEvent(kind.INTERIM_TRANSCRIPT, [data], request_id=request_id)
        rec = out.recognition
        if rec is None or not rec.text:
            return None
        if rec.words:  # word times are relative to the utterance's audio
            start, end = out.offset + rec.start_time, out.offset + rec.end_time
        else:
            start, end = out.offset, max(out.offset, out.speech_end)
        data = stt.SpeechData(
            text=rec.text,
            language=language,
            confidence=rec.confidence if rec.confidence is not None else 0.0,
            start_time=start,
            end_time=end,
        )
        return stt.SpeechEvent(kind.FINAL_TRANSCRIPT, [data], request_id=request_id)


class _To16k:
    """rtc.AudioFrame of any rate and layout → 16 kHz mono int16 bytes (pass-through when the
    frames already are, as ``VoiceAssistant``'s are)."""

    def __init__(self) -> None:
        self._resampler = Resampler(SAMPLE_RATE, mono=True)

    def push(self, frame: Any) -> bytes:
        if frame.sample_rate == SAMPLE_RATE and frame.num_channels == 1:
            head = self.flush()  # audio held back from an earlier rate goes first
            return head + bytes(frame.data) if head else bytes(frame.data)
        return b"".join(bytes(f.data) for f in self._resampler.push(frame))

    def flush(self) -> bytes:
        return b"".join(bytes(f.data) for f in self._resampler.flush())


def _to_pcm(frames: list[Any]) -> bytes:
    # on a native thread: the conversion to 16 kHz mono (any input rates and channel counts,
    # ~1 ms per second of 48 kHz audio)
    return b"".join(bytes(f.data) for f in resample(frames, SAMPLE_RATE, mono=True))
