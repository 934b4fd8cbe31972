"""Feeds the user's microphone in a LocalRoom: a WAV file at real-time pace, then silence.

A real microphone keeps sending after the user stops talking; so do we, or the agent's VAD
would never see the end of the last utterance.
"""

from __future__ import annotations

from typing import Any

import gevent.event

from .. import rtc
from ..codecs.wav import read_wav
from ..testing.local_room import USER_RATE
from ..utils.audio import resample, split_frames

FRAME_MS = 10


def load_input(path: str) -> list[Any]:
    """The WAV as 10 ms mono frames at the user track's rate (any input rate/channels)."""
    frame, _, _ = read_wav(path)
    # passes 48 kHz mono through untouched; downmixes and resamples anything else
    return split_frames(resample([frame], USER_RATE, mono=True), FRAME_MS, pad_last=True)


class InputFeeder:
    """Plays frames into ``source`` (blocking capture paces it), then silence until stopped."""

    def __init__(self, source: rtc.AudioSource) -> None:
        self.source = source
        self.ended = gevent.event.Event()
        n = USER_RATE * FRAME_MS // 1000
        self._silence = rtc.AudioFrame(bytes(2 * n), USER_RATE, 1, n)

    def play(self, frames: list[Any]) -> None:
        for frame in frames:
            self.source.capture_frame(frame)
        self.ended.set()
        while True:  # ends when the console kills this greenlet
            self.source.capture_frame(self._silence)

    def silence_only(self) -> None:
        self.ended.set()
        while True:
            self.source.capture_frame(self._silence)

