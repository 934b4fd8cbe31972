"""``syncagents.testing.converse``: an agent test in three lines, on the console's machinery."""

from __future__ import annotations

import wave
from pathlib import Path
from typing import Any

import av
import gevent.event
import numpy as np
import pytest
from test_console_cli import encode

from syncagents import JobContext, VoiceAssistant, llm
from syncagents.testing import Conversation, FakeLLM, FakeSTT, FakeTTS, FakeVAD, converse
from syncagents.utils.audio import sine_frame


def _burst(rate: int = 16000) -> np.ndarray:
    tone = np.frombuffer(sine_frame(440, 0.6, rate, amplitude=0.3).data, dtype=np.int16)
    pad = np.zeros(int(0.3 * rate), dtype=np.int16)
    return np.concatenate([pad, tone, pad])


def _wav(path: Path, samples: np.ndarray, rate: int, *, width: int = 2, channels: int = 1) -> Path:
    """A WAV of any integer sample width (8-bit WAV is unsigned)."""
    data = np.repeat(samples.astype(np.int32), channels)
    if width == 1:
        raw = ((data >> 8) + 128).astype(np.uint8).tobytes()
    elif width == 3:
        wide = (data << 8).astype("<i4").view(np.uint8).reshape(-1, 4)
        raw = wide[:, :3].tobytes()
    elif width == 4:
        raw = (data << 16).astype("<i4").tobytes()
    else:
        raw = data.astype("<i2").tobytes()
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(raw)
    return path


def _float_wav(path: Path, samples: np.ndarray, rate: int) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_f32le", rate=rate, layout="mono")
        frame = av.AudioFrame.from_ndarray(
            (samples.astype(np.float32) / 32768).reshape(1, -1), format="flt", layout="mono"
        )
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def assistant_agent(transcripts: list[str], seen: list[str] | None = None) -> Any:
    """An entrypoint: a VoiceAssistant on the fakes answering ``ok: <user turn>``."""

    def respond(chat_ctx: llm.ChatContext) -> str:
        text = str(chat_ctx.messages[-1].content)
        if seen is not None:
            seen.append(text)
        return f"ok: {text}"

    def entrypoint(ctx: JobContext) -> None:
        ctx.connect()
        participant = ctx.wait_for_participant(timeout=10)
        assistant = VoiceAssistant(
            vad=FakeVAD(),
            stt=FakeSTT(transcripts),
            llm=FakeLLM(responder=respond),
            tts=FakeTTS(seconds_per_char=0.02),
            min_endpointing_delay=0.2,
        )
        assistant.start(ctx.room, participant)
        assistant.say("Hello there.")

    return entrypoint


def test_audio_and_text_in_order(tmp_path: Path) -> None:
    wav = _wav(tmp_path / "lights.wav", _burst(), 16000)
    seen: list[str] = []
    conversation = converse(
        assistant_agent(["turn on the lights"], seen),
        inputs=[str(wav), "and the heating", Path(wav)],
        timeout=120,
        idle_timeout=0.5,
    )
    assert isinstance(conversation, Conversation)
    assert conversation.greeting == "Hello there."
    assert [(t.kind, t.user_text, t.agent_text) for t in conversation.turns] == [
        ("audio", "turn on the lights", "ok: turn on the lights"),
        ("text", "and the heating", "ok: and the heating"),
        ("audio", "", ""),  # the scripted STT has nothing more to say: no turn, no answer
    ]
    # each input went out after the agent answered the one before
    assert seen == ["turn on the lights", "and the heating"]
    assert all(t.latency is not None and t.latency >= 0 for t in conversation.turns[:2])
    assert conversation.turns[2].latency is None
    assert conversation.user_text == "turn on the lights and the heating"
    assert conversation.agent_text == (
        "Hello there. ok: turn on the lights ok: and the heating"
    )
    assert conversation.job is not None and not conversation.job.failed


@pytest.mark.parametrize(
    "name", ["ogg-opus", "flac", "mp3", "wav-8bit", "wav-24bit-stereo", "wav-32bit", "wav-float"]
)
def test_any_audio_pyav_reads(tmp_path: Path, name: str) -> None:
    rate = 44100 if name != "ogg-opus" else 48000
    samples = _burst(rate)
    path = {
        "ogg-opus": lambda: encode(tmp_path / "in.ogg", samples, rate, "libopus"),
        "flac": lambda: encode(tmp_path / "in.flac", samples, rate, "flac"),
        "mp3": lambda: encode(tmp_path / "in.mp3", samples, rate, "mp3", channels=2),
        "wav-8bit": lambda: _wav(tmp_path / "in.wav", samples, rate, width=1),
        "wav-24bit-stereo": lambda: _wav(tmp_path / "in.wav", samples, rate, width=3, channels=2),
        "wav-32bit": lambda: _wav(tmp_path / "in.wav", samples, rate, width=4),
        "wav-float": lambda: _float_wav(tmp_path / "in.wav", samples, rate),
    }[name]()
    conversation = converse(
        assistant_agent(["turn on the lights"]), [path], timeout=120, idle_timeout=0.5
    )
    assert conversation.turns[0].user_text == "turn on the lights"
    assert conversation.turns[0].agent_text == "ok: turn on the lights"


def test_unreadable_input_fails_before_the_agent_starts(tmp_path: Path) -> None:
    started: list[bool] = []

    def entrypoint(ctx: JobContext) -> None:
        started.append(True)

    (tmp_path / "notes.txt").write_text("not audio")
    with pytest.raises(ValueError, match="cannot read"):
        converse(entrypoint, [tmp_path / "notes.txt"])
    assert not started


def test_timeout_raises() -> None:
    def deaf(ctx: JobContext) -> None:
        ctx.connect()
        gevent.event.Event().wait()  # listens to nothing, never answers, never returns

    with pytest.raises(TimeoutError, match="not over after 3"):
        converse(deaf, ["hello?"], timeout=3, idle_timeout=0.5)


def test_agent_failure_raises() -> None:
    def broken(ctx: JobContext) -> None:
        ctx.connect()
        raise RuntimeError("no model configured")

    with pytest.raises(RuntimeError, match="RuntimeError: no model configured"):
        converse(broken, ["hello?"], timeout=60, idle_timeout=0.5)
