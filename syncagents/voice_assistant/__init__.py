"""``VoiceAssistant``: a voice agent for one participant (VAD → STT → LLM → TTS), blocking
style. See ``assistant`` for how a conversation runs and ``played_text`` for how an
interrupted speech's text is cut to what was heard."""

from __future__ import annotations

from .assistant import VoiceAssistant
from .events import EVENTS, EventName
from .metrics import TurnMetrics
from .speech_handle import SpeechHandle

__all__ = ["EVENTS", "EventName", "SpeechHandle", "TurnMetrics", "VoiceAssistant"]
