"""Which part of a speech's text was actually heard when its playout stopped early.

Approach (documented in the package docstring too): the TTS marks the first frame of each
synthesized sentence/segment with that segment's text (``SynthesizedAudio.delta_text``), so
every segment is known with the stretch of audio that voices it. When playout stops after
``played`` seconds of audio:

* segments whose audio fully played count with all their words;
* the segment being played counts with the share of its words proportional to the share of
  its audio that played, rounded down (a word counts once its share of audio has played);
* later segments count for nothing.

The result is a number of words, cut from the speech's own text (the words the source gave,
with its spacing), so the committed text is always a prefix of what the agent meant to say.
Counting words rather than characters keeps this right when the tokenizer re-spaces or
merges sentences. A TTS that marks no segments is treated as one segment holding every word
pushed to it. ``before_tts_cb`` may change the wording: the count then maps by position, an
approximation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["PlayoutTracker", "count_words", "slice_words"]

_WORD = re.compile(r"\S+")


def count_words(text: str) -> int:
    """The number of words in ``text`` (runs of non-whitespace)."""
    return len(_WORD.findall(text))


def slice_words(text: str, start: int, end: int | None = None) -> str:
    """Words ``start:end`` of ``text`` with their original spacing between them."""
    spans = [m.span() for m in _WORD.finditer(text)][start:end]
    if not spans:
        return ""
    return text[spans[0][0] : spans[-1][1]]


@dataclass
class _Segment:
    words: int
    start: float  # seconds of speech audio before the segment's first frame


class PlayoutTracker:
    """Fed with every frame handed to the audio source, in order; answers ``played_words``."""

    def __init__(self) -> None:
        self._segments: list[_Segment] = []
        self.captured = 0.0
        """Seconds of audio handed to the source so far."""

    def on_audio(self, delta_text: str, duration: float) -> None:
        """Record one frame of ``duration`` seconds handed to the audio source.

        A non-blank ``delta_text`` starts a new segment holding its words at this point of the
        audio.
        """
        if delta_text.strip():
            # frames that came before the first marked one belong to the first segment
            start = self.captured if self._segments else 0.0
            self._segments.append(_Segment(count_words(delta_text), start))
        self.captured += duration

    def played_words(self, played: float, total_words: int) -> int:
        """Words heard after ``played`` seconds; ``total_words``: the speech's word count so
        far (used when the TTS marked no segments, and as an upper bound)."""
        played = max(0.0, min(played, self.captured))
        segments = self._segments or [_Segment(total_words, 0.0)]
        words = 0
        for i, seg in enumerate(segments):
            end = segments[i + 1].start if i + 1 < len(segments) else self.captured
            if played >= end - 1e-9:
                words += seg.words
                continue
            if played > seg.start and end > seg.start:
                # the epsilon absorbs float drift from summing frame durations
                words += int(seg.words * (played - seg.start) / (end - seg.start) + 1e-6)
            break
        return min(words, total_words)
