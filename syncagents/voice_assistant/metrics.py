"""Per-turn metrics of the assistant (``metrics_collected``) and the timings that build them."""

from __future__ import annotations

import time
from dataclasses import dataclass

from loguru import logger

__all__ = ["TurnMetrics", "TurnTimings"]


@dataclass
class TurnMetrics:
    """Figures of one user turn and the reply to it. Seconds; -1 when not measured.

    "User stopped speaking" is the moment the end of the user's speech reached the agent:
    where the VAD last heard speech, not when it reported END_OF_SPEECH (that comes
    ``min_silence_duration`` later, once the VAD is sure). Every delay below counts from it,
    so they read as one timeline: transcript, LLM, TTS, endpoint, first audio out.
    """

    speech_id: str
    """The reply's ``SpeechHandle.id``."""
    timestamp: float
    """Wall-clock time (``time.time()``) when the metrics were taken."""
    user_text: str
    end_of_utterance_delay: float
    """User stopped speaking → the turn was validated (endpoint reached)."""
    transcription_delay: float
    """User stopped speaking → last final transcript of the turn (0 if it came earlier)."""
    stt_duration: float
    """Recognition time the STT plugin reported for the turn's speech (batch STTs)."""
    llm_ttft: float
    """Time to first token of the reply's first LLM request."""
    tts_ttfb: float
    """Time to first audio byte of the reply's synthesis."""
    e2e_latency: float
    """User stopped speaking → first agent audio frame handed to the audio source."""
    reply_delay: float
    """Turn validated → first agent audio frame handed to the audio source."""
    function_rounds: int
    """LLM rounds that ended in tool calls."""
    preemptive: bool
    """The reply was synthesized before the turn was validated."""
    interrupted: bool
    interruption_delay: float
    """Interruption decided → agent playout stopped (queue cleared)."""
    llm_first_token_delay: float = -1.0
    """User stopped speaking → the reply's first text from the LLM (before the endpoint when
    the reply was made preemptively)."""
    tts_first_frame_delay: float = -1.0
    """User stopped speaking → the reply's first synthesized audio (held back until the
    endpoint when made preemptively)."""
    vad_report_delay: float = -1.0
    """User stopped speaking → the VAD reported END_OF_SPEECH (its ``min_silence_duration``
    plus the time to get the audio through it): the turn cannot end before."""

    def log(self) -> None:
        """Log the figures as one INFO line (in ms; ``-`` for those not measured)."""
        def ms(value: float) -> str:
            return "-" if value < 0 else f"{value * 1000:.0f} ms"

        logger.bind(speech_id=self.speech_id).info(
            "turn {}: after the user stopped speaking: transcript {}, vad end {}, "
            "llm first token {}, tts first frame {}, end of utterance {}, e2e {} (reply {}{}); "
            "stt {}, llm ttft {}, tts ttfb {}{}{}",
            self.speech_id,
            ms(self.transcription_delay),
            ms(self.vad_report_delay),
            ms(self.llm_first_token_delay),
            ms(self.tts_first_frame_delay),
            ms(self.end_of_utterance_delay),
            ms(self.e2e_latency),
            ms(self.reply_delay),
            ", preemptive" if self.preemptive else "",
            ms(self.stt_duration),
            ms(self.llm_ttft),
            ms(self.tts_ttfb),
            f", {self.function_rounds} tool round(s)" if self.function_rounds else "",
            f", interrupted (stopped in {ms(self.interruption_delay)})" if self.interrupted else "",
        )


@dataclass
class TurnTimings:
    """Times (on the assistant's clock, ``time.monotonic()`` by default) and figures gathered
    while a reply runs."""

    user_text: str = ""
    speech_ended_at: float = -1.0
    end_of_speech_reported_at: float = -1.0
    transcript_at: float = -1.0
    validated_at: float = -1.0
    first_frame_at: float = -1.0
    llm_first_token_at: float = -1.0
    tts_first_frame_at: float = -1.0
    """When the first audio was synthesized; when not recorded, it is taken as the first LLM
    token (the moment the reply's first text went to the TTS) plus the TTS's ``tts_ttfb``."""
    stt_duration: float = -1.0
    llm_ttft: float = -1.0
    tts_ttfb: float = -1.0
    function_rounds: int = 0
    preemptive: bool = False
    interruption_delay: float = -1.0

    def metrics(self, speech_id: str, interrupted: bool) -> TurnMetrics:
        """The ``TurnMetrics`` of the reply ``speech_id``, from the times gathered so far.

        A delay whose start or end was not recorded is -1; ``interruption_delay`` counts only
        when ``interrupted``.
        """
        def since_speech_end(at: float) -> float:
            if at < 0 or self.speech_ended_at < 0:
                return -1.0
            return max(0.0, at - self.speech_ended_at)

        tts_first_frame_at = self.tts_first_frame_at
        if tts_first_frame_at < 0 and self.llm_first_token_at >= 0 and self.tts_ttfb >= 0:
            tts_first_frame_at = self.llm_first_token_at + self.tts_ttfb
        reply = -1.0
        if self.first_frame_at >= 0 and self.validated_at >= 0:
            reply = max(0.0, self.first_frame_at - self.validated_at)
        return TurnMetrics(
            speech_id=speech_id,
            timestamp=time.time(),
            user_text=self.user_text,
            end_of_utterance_delay=since_speech_end(self.validated_at),
            transcription_delay=since_speech_end(self.transcript_at),
            stt_duration=self.stt_duration,
            llm_ttft=self.llm_ttft,
            tts_ttfb=self.tts_ttfb,
            e2e_latency=since_speech_end(self.first_frame_at),
            reply_delay=reply,
            function_rounds=self.function_rounds,
            preemptive=self.preemptive,
            interrupted=interrupted,
            interruption_delay=self.interruption_delay if interrupted else -1.0,
            llm_first_token_delay=since_speech_end(self.llm_first_token_at),
            tts_first_frame_delay=since_speech_end(tts_first_frame_at),
            vad_report_delay=since_speech_end(self.end_of_speech_reported_at),
        )
