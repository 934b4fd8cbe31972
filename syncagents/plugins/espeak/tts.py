"""``plugins.espeak.TTS``: offline speech synthesis with espeak-ng (robotic, instant)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ... import tts
from ...runtime import to_thread
from ...utils.audio import AudioByteStream
from ._engine import check_rate, engine

__all__ = ["TTS"]

FRAME_MS = 20


class TTS(tts.TTS):
    """espeak-ng through the library in the ``espeakng-loader`` wheel (no OS package).

    ``voice`` is an espeak-ng voice name (``en-us``, ``en-gb``, ``fr``, ``de``, ...) and
    ``rate`` the speaking rate in words per minute (80–450). Output: mono at espeak's rate
    (22050 Hz) in 20 ms frames, or at ``sample_rate`` if given (the base class resamples).

    espeak-ng has one global state, so syntheses (~500× faster than real time) run one at a
    time, each in ``syncagents.to_thread``: the hub is never held.
    Constructing the TTS loads espeak-ng once per process and checks the voice (a few ms,
    off the hub); an unknown voice raises ``ValueError``.
    """

    def __init__(
        self, voice: str = "en-us", rate: int = 175, *, sample_rate: int | None = None
    ) -> None:
        check_rate(rate)
        native_rate = to_thread(engine.prepare, voice)
        super().__init__(
            sample_rate=sample_rate or native_rate,
            num_channels=1,
            capabilities=tts.TTSCapabilities(streaming=False),
        )
        self.voice = voice
        self.rate = rate
        self.native_sample_rate = native_rate

    def _synthesize(self, text: str) -> Iterator[Any]:
        if not text.strip():
            return
        samples = to_thread(engine.synthesize, text, self.voice, self.rate)
        chunker = AudioByteStream(
            self.native_sample_rate, 1, self.native_sample_rate * FRAME_MS // 1000
        )
        data = samples.tobytes()
        # hand frames out in slices so a long text's conversion never holds the hub at once
        step = self.native_sample_rate * 2  # one second of audio per slice
        for start in range(0, len(data), step):
            yield from chunker.write(data[start : start + step])
        yield from chunker.flush()
