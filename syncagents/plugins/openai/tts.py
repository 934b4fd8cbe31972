"""``plugins.openai.TTS``: speech from ``POST /audio/speech``, played as it downloads."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

from ... import tts
from ...codecs import Mp3StreamDecoder
from ...utils.audio import AudioByteStream
from ._http import DEFAULT_TIMEOUT, OpenAIClient, Timeout

__all__ = ["TTS"]

#: OpenAI's "pcm" format: raw 24 kHz 16-bit little-endian mono
PCM_SAMPLE_RATE = 24000
FRAME_MS = 20
_READ_SIZE = 4096

ResponseFormat = Literal["pcm", "mp3"]


class TTS(tts.TTS):
    """OpenAI text-to-speech (or any server with the same endpoint).

    The body is read as it arrives: ``"pcm"`` is cut into 20 ms frames, ``"mp3"`` goes
    through ``codecs.Mp3StreamDecoder``. Frames come out at ``sample_rate`` (the base class
    resamples when the server's rate differs). Retries happen only before the first byte of
    audio; errors as in ``plugins.openai.LLM``.
    """

    def __init__(
        self,
        model: str = "tts-1",
        voice: str = "alloy",
        response_format: ResponseFormat = "pcm",
        sample_rate: int = PCM_SAMPLE_RATE,
        *,
        speed: float | None = None,
        instructions: str | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: Timeout = DEFAULT_TIMEOUT,
        max_retries: int = 3,
        retry_backoff: float = 0.5,
        organization: str | None = None,
    ) -> None:
        if response_format not in ("pcm", "mp3"):
            raise ValueError(f"response_format must be 'pcm' or 'mp3', not {response_format!r}")
        super().__init__(
            sample_rate=sample_rate,
            num_channels=1,
            capabilities=tts.TTSCapabilities(streaming=False),
        )
        self.model = model
        self.voice = voice
        self.response_format: ResponseFormat = response_format
        self.speed = speed
        self.instructions = instructions
        self._client = OpenAIClient.from_env(
            base_url, api_key, timeout=timeout, max_retries=max_retries,
            retry_backoff=retry_backoff, organization=organization,
        )

    def close(self) -> None:
        self._client.close()

    def _synthesize(self, text: str) -> Iterator[Any]:
        if not text.strip():
            return
        body: dict[str, Any] = {
            "model": self.model,
            "input": text,
            "voice": self.voice,
            "response_format": self.response_format,
        }
        if self.speed is not None:
            body["speed"] = self.speed
        if self.instructions:
            body["instructions"] = self.instructions
        resp = self._client.request("POST", "audio/speech", json_body=body, stream=True)
        with resp:
            chunks = self._client.iter_body(resp, _READ_SIZE)
            if self.response_format == "pcm":
                pcm = AudioByteStream(PCM_SAMPLE_RATE, 1, PCM_SAMPLE_RATE * FRAME_MS // 1000)
                for chunk in chunks:
                    yield from pcm.write(chunk)
                yield from pcm.flush()
            else:
                decoder = Mp3StreamDecoder()
                for chunk in chunks:
                    yield from decoder.decode_chunk(chunk)
                yield from decoder.flush()
