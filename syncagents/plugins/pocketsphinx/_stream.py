"""Streaming recognition: utterances found by pocketsphinx's endpointer, decoded while the
user speaks.

Two halves per stream, called one after the other by the stream's greenlet, never at once:

* :class:`Segmenter` (in the greenlet: microseconds per 30 ms frame) runs the endpointer over
  the incoming 16 kHz audio and turns it into a queue of *ops*: ``_Open`` where speech
  begins, the speech audio, ``_Close`` where it ends;
* :meth:`UtteranceDecoder.step` (on a native thread, through the decode limiter) takes ops off
  that queue, at most ``max_slice`` seconds of audio per call, and feeds them to a decoder
  borrowed for the utterance, producing the events: start, interim hypotheses (every
  ``interim_interval`` seconds of speech), final, end.

So when the endpointer declares the end of speech, the decoder has already searched all but
the last few frames: the final transcript costs one small step plus pocketsphinx's
``end_utt`` (a few ms), not a decode of the whole utterance.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import Union

from ._decoder import SAMPLE_RATE, Endpointer, Recognition, SphinxDecoder

__all__ = ["Out", "Segmenter", "Step", "UtteranceDecoder"]

_BYTES_PER_SECOND = SAMPLE_RATE * 2


@dataclass
class _Open:
    time: float  # seconds from the start of the stream


@dataclass
class _Close:
    time: float


_Op = Union[_Open, bytes, _Close]


@dataclass
class Out:
    """One event for the stream's consumer (converted to a ``SpeechEvent`` in the greenlet)."""

    kind: str  # "start" | "interim" | "final" | "end"
    time: float = 0.0
    """start/end: where the speech began/ended (s from the start of the stream)."""
    text: str = ""
    recognition: Recognition | None = None
    offset: float = 0.0
    """final: the stream time where the utterance's audio begins (its word times are
    relative to it)."""
    speech_end: float = 0.0
    """final: where the speech ended, when known."""


@dataclass
class Step:
    events: list[Out] = field(default_factory=list)
    release_decoder: bool = False
    """The utterance ended and no other is queued: give the decoder back."""
    decoded: int = 0
    """Bytes of audio fed to the decoder in this step."""


class Segmenter:
    """Endpointer state of one stream; produces the ops queue. Greenlet side."""

    def __init__(self, endpointer: Endpointer) -> None:
        self.ep = endpointer
        self.ops: collections.deque[_Op] = collections.deque()
        self._carry = bytearray()  # audio not yet a whole endpointer frame
        self._open = False
        self._pushed = 0  # bytes given to the endpointer (for the end-of-stream time)
        self.ended = False

    @property
    def in_speech(self) -> bool:
        return self._open

    def push(self, pcm: bytes) -> None:
        """More 16 kHz mono int16 audio."""
        ep, fb = self.ep, self.ep.frame_bytes
        self._carry += pcm
        usable = len(self._carry) - len(self._carry) % fb
        if usable == 0:
            return
        data = bytes(self._carry[:usable])
        del self._carry[:usable]
        for start in range(0, usable, fb):
            out = ep.process(data[start : start + fb])
            self._pushed += fb
            if out is None:
                continue
            if not self._open:
                self._open = True
                self.ops.append(_Open(ep.speech_start))
            self.ops.append(out)
            if not ep.in_speech:
                self._open = False
                self.ops.append(_Close(ep.speech_end))

    def end(self) -> None:
        """No more audio: what the endpointer still holds, and the end of an open utterance."""
        if self.ended:
            return
        self.ended = True
        tail = bytes(self._carry)
        self._carry.clear()
        self._pushed += len(tail)
        rest = self.ep.end_stream(tail)
        if rest:
            if not self._open:
                self._open = True
                self.ops.append(_Open(self.ep.speech_start))
            self.ops.append(rest)
        if self._open:
            self._open = False
            self.ops.append(_Close(self._pushed / _BYTES_PER_SECOND))

    @property
    def backlog(self) -> int:
        """Bytes of speech audio waiting for the decoder."""
        return sum(len(op) for op in self.ops if isinstance(op, bytes))

    @property
    def needs_decoder(self) -> bool:
        return bool(self.ops)


class UtteranceDecoder:
    """Decoder side of one stream: consumes the ops with a borrowed decoder. Each
    :meth:`step` runs on a native thread; the greenlet sets ``decoder`` between steps."""

    def __init__(
        self,
        ops: collections.deque[_Op],
        *,
        interim_interval: float = 0.3,
        max_slice: float = 0.5,
        max_utterance: float = 30.0,
        interim: bool = True,
    ) -> None:
        self.ops = ops
        self.decoder: SphinxDecoder | None = None
        self.cmn: str | None = None
        """This stream's speaker's cepstral mean (from its last utterance), if any."""
        self.default_cmn: str | None = None
        """Where a first utterance starts from when the decoder has not heard anything yet
        (the pool's latest), set by the greenlet."""
        self.interim = interim
        self._interim_bytes = max(2, int(interim_interval * _BYTES_PER_SECOND))
        self._max_slice = max(2, int(max_slice * _BYTES_PER_SECOND))
        self._max_utterance = max(2, int(max_utterance * _BYTES_PER_SECOND))
        self._in_utt = False
        self._offset = 0.0
        self._fed = 0  # bytes of the current utterance fed so far
        self._since_interim = 0
        self._last_interim = ""

    @property
    def in_utterance(self) -> bool:
        return self._in_utt

    def step(self) -> Step:
        """Decode queued ops, up to ``max_slice`` seconds of audio (a native-thread call)."""
        decoder = self.decoder
        assert decoder is not None, "step() needs a decoder"
        result = Step()
        ops = self.ops
        with decoder.lock:
            while ops and result.decoded < self._max_slice:
                op = ops[0]
                if isinstance(op, _Open):
                    ops.popleft()
                    self._begin(decoder, op.time, result)
                elif isinstance(op, _Close):
                    ops.popleft()
                    if self._in_utt:
                        self._finish(decoder, result, op.time)
                    result.events.append(Out("end", time=op.time))
                    if not ops:
                        result.release_decoder = True
                else:
                    ops.popleft()
                    if not self._in_utt:  # (not expected: audio always follows an _Open)
                        self._begin(decoder, self._offset, result, emit=False)
                    decoder.feed(op)
                    result.decoded += len(op)
                    self._fed += len(op)
                    self._since_interim += len(op)
                    if self._fed >= self._max_utterance:
                        # a very long "utterance" (noise, a monologue): cut it, so memory
                        # and the final's latency stay bounded, and go on in a new one
                        cut = self._offset + self._fed / _BYTES_PER_SECOND
                        self._finish(decoder, result, cut)
                        result.events.append(Out("end", time=cut))
                        self._begin(decoder, cut, result)
                    elif self.interim and self._since_interim >= self._interim_bytes:
                        self._since_interim = 0
                        text = decoder.partial()
                        if text and text != self._last_interim:
                            self._last_interim = text
                            result.events.append(Out("interim", text=text))
        return result

    def finish_now(self, end_time: float) -> Step:
        """End the open utterance at once (the input ended or the stream closes)."""
        result = Step()
        if self._in_utt and self.decoder is not None:
            with self.decoder.lock:
                self._finish(self.decoder, result, end_time)
            result.events.append(Out("end", time=end_time))
        result.release_decoder = True
        return result

    def _begin(self, decoder: SphinxDecoder, time: float, result: Step, emit: bool = True) -> None:
        cmn = self.cmn or (self.default_cmn if not decoder.utterances else None)
        decoder.begin(cmn)
        self._in_utt = True
        self._offset = time
        self._fed = 0
        self._since_interim = 0
        self._last_interim = ""
        if emit:
            result.events.append(Out("start", time=time))

    def _finish(self, decoder: SphinxDecoder, result: Step, speech_end: float) -> None:
        recognition = decoder.finish()
        self._in_utt = False
        if recognition.text:  # an utterance with words in it: its mean describes the speaker
            self.cmn = decoder.cmn
        result.events.append(
            Out("final", recognition=recognition, offset=self._offset, speech_end=speech_end)
        )
