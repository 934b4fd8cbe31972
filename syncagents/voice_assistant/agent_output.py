"""The agent's side: its published audio track and the playout of one speech at a time.

The track is fed by an ``rtc.AudioSource`` with a short native queue (``QUEUE_SIZE_MS``):
``capture_frame`` then blocks the playout greenlet at real-time pace, only that much audio
is ever committed ahead of the listener, and ``clear_queue()`` silences the track within a
frame. Playout of a speech runs in its own greenlet; killing it is how a speech is
interrupted: the frame being handed over is dropped, what is queued is cleared, and the
audio that actually played (captured minus still queued) is recorded for the chat context.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import gevent
from loguru import logger

from .. import rtc
from ..channel import ChanClosed
from .clock import MONOTONIC, Clock
from .speech_handle import SpeechHandle

__all__ = ["QUEUE_SIZE_MS", "TRACK_NAME", "AgentOutput"]

TRACK_NAME = "assistant_voice"
QUEUE_SIZE_MS = 200
# slack on top of the speech's own length when waiting for its audio to play out
_PLAYOUT_SLACK = 5.0
# Frames already synthesized are handed over together, up to this much audio per capture:
# each capture is a round trip to livekit's native side (an FFI request and its callback,
# across threads), so with many assistants in one process fewer, larger captures keep the
# hub responsive. Only audio that is already there is merged: the first frame never waits.
_MAX_BATCH_S = 0.1


class AgentOutput:
    """The agent's audio track (``assistant_voice``) and the playout of its speeches.

    ``source`` is an ``rtc.AudioSource`` with a short native queue (``QUEUE_SIZE_MS``), ``track``
    the local track it feeds; ``publish(room)`` publishes it as the agent's microphone and
    ``play(...)`` plays one speech.
    """

    def __init__(self, sample_rate: int, num_channels: int, clock: Clock = MONOTONIC) -> None:
        self._clock = clock  # the assistant's: when a speech stopped, on its timeline
        self.source = rtc.AudioSource(sample_rate, num_channels, queue_size_ms=QUEUE_SIZE_MS)
        self.track = rtc.LocalAudioTrack.create_audio_track(TRACK_NAME, self.source)
        self.track_sid = ""
        self.published = False

    def publish(self, room: Any) -> None:
        """Publish the track as the agent's microphone (blocking)."""
        options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        publication = room.local_participant.publish_track(self.track, options)
        self.track_sid = str(getattr(publication, "sid", "") or getattr(self.track, "sid", ""))
        self.published = True

    def play(
        self,
        handle: SpeechHandle,
        on_first_frame: Callable[[], None],
        on_new_segment: Callable[[], None],
    ) -> None:
        """Hand the speech's audio to the source until it played out (run in its own greenlet;
        kill the greenlet to interrupt)."""
        synthesis = handle.synthesis
        if synthesis is None:
            return
        tracker = handle.tracker
        source = self.source
        try:
            try:
                for batch in _batches(synthesis.stream):
                    source.capture_frame(_merge([a.frame for a in batch]))
                    for audio in batch:
                        tracker.on_audio(audio.delta_text, _seconds(audio.frame))
                        if handle.mark_started():
                            on_first_frame()
                        elif audio.delta_text:
                            on_new_segment()
            except Exception as exc:  # a TTS failure: play what we have
                logger.opt(exception=True).error("speech {}: synthesis failed: {}", handle.id, exc)
            if tracker.captured > 0:
                try:
                    source.wait_for_playout(timeout=tracker.captured + _PLAYOUT_SLACK)
                except TimeoutError:
                    logger.warning("speech {}: playout did not finish in time", handle.id)
            handle.mark_played(tracker.captured)
        except gevent.GreenletExit:
            # interrupted: what is still queued will never be heard
            heard = max(0.0, tracker.captured - source.queued_duration)
            source.clear_queue()
            handle.mark_played(heard, stopped_at=self._clock.now())
            raise

    def close(self) -> None:
        """Close the audio source; a failure (e.g. at exit) is logged, not raised."""
        try:
            self.source.close()
        except Exception:  # closing at shutdown: the bridge may already be gone
            logger.opt(exception=True).debug("closing the agent audio source failed")


def _batches(stream: Any) -> Iterator[list[Any]]:
    """``SynthesizedAudio`` items in runs: one item (waited for), then whatever else is
    already there, up to ``_MAX_BATCH_S`` of audio."""
    while True:
        try:
            first = stream.recv()
        except ChanClosed:
            return
        batch = [first]
        seconds = _seconds(first.frame)
        while seconds < _MAX_BATCH_S:
            try:
                item = stream.recv(timeout=0)  # only what is already queued
            except (TimeoutError, ChanClosed):
                break
            batch.append(item)
            seconds += _seconds(item.frame)
        yield batch


def _seconds(frame: Any) -> float:
    return float(frame.samples_per_channel) / float(frame.sample_rate)


def _merge(frames: list[Any]) -> Any:
    if len(frames) == 1:
        return frames[0]
    first = frames[0]
    return rtc.AudioFrame(
        b"".join(bytes(f.data) for f in frames),
        first.sample_rate,
        first.num_channels,
        sum(int(f.samples_per_channel) for f in frames),
    )
