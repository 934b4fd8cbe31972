"""``plugins.openai.STT``: batch transcription through ``POST /audio/transcriptions``."""

from __future__ import annotations

from typing import Any

from ... import stt
from ...codecs import wav_bytes
from ...utils.audio import merge_frames, resample
from ._errors import APIStatusError
from ._http import DEFAULT_TIMEOUT, OpenAIClient, Timeout

__all__ = ["STT"]


class STT(stt.STT):
    """Whisper (or any OpenAI-compatible transcription server) on whole utterances.

    The audio goes up as a mono 16-bit WAV at the first frame's rate. ``language`` (e.g.
    ``"en"`` or ``"en-US"``; only the ISO-639-1 part is sent) helps accuracy and latency;
    ``None`` lets the server detect it. For streaming, wrap it in ``stt.StreamAdapter``.
    Retries and errors as in ``plugins.openai.LLM``.
    """

    def __init__(
        self,
        model: str = "whisper-1",
        language: str | None = None,
        *,
        prompt: str | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: Timeout = DEFAULT_TIMEOUT,
        max_retries: int = 3,
        retry_backoff: float = 0.5,
        organization: str | None = None,
    ) -> None:
        super().__init__(capabilities=stt.STTCapabilities(streaming=False, interim_results=False))
        self.model = model
        self.language = language
        self.prompt = prompt
        self._client = OpenAIClient.from_env(
            base_url, api_key, timeout=timeout, max_retries=max_retries,
            retry_backoff=retry_backoff, organization=organization,
        )

    def close(self) -> None:
        self._client.close()

    def _recognize(self, frames: list[Any], language: str | None) -> stt.SpeechEvent:
        lang = language or self.language
        if not frames:
            return stt.SpeechEvent(type=stt.SpeechEventType.FINAL_TRANSCRIPT)
        rate = int(frames[0].sample_rate)
        audio = merge_frames(resample(frames, rate, mono=True))
        duration = audio.samples_per_channel / rate
        fields: dict[str, str] = {"model": self.model, "response_format": "json"}
        if lang:
            fields["language"] = lang.split("-")[0].split("_")[0].lower()
        if self.prompt:
            fields["prompt"] = self.prompt
        resp = self._client.request(
            "POST",
            "audio/transcriptions",
            data=fields,
            files={"file": ("audio.wav", wav_bytes(audio), "audio/wav")},
        )
        try:
            payload = resp.json()
        except ValueError:
            raise APIStatusError(
                f"undecodable transcription from {resp.url}: {resp.text[:200]!r}",
                status=resp.status_code,
            ) from None
        text = str(payload.get("text") or "").strip() if isinstance(payload, dict) else ""
        alternatives = []
        if text:
            detected = payload.get("language") if isinstance(payload, dict) else None
            alternatives.append(
                stt.SpeechData(
                    text=text,
                    language=str(detected or lang or ""),
                    confidence=0.0,  # the JSON answer has none: 0.0 means unknown
                    start_time=0.0,
                    end_time=duration,
                )
            )
        return stt.SpeechEvent(type=stt.SpeechEventType.FINAL_TRANSCRIPT, alternatives=alternatives)
