"""``syncagents console``: an agent in a local room, fed a WAV, recorded to a WAV."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import wave
from pathlib import Path

import gevent.event
import numpy as np
import pytest
from speech import compose, resample, silence

from syncagents import JobContext, VoiceAssistant, rtc, stt
from syncagents.console import LineReader, run_console
from syncagents.testing import FakeLLM, FakeSTT, FakeTTS, FakeVAD
from syncagents.utils.audio import sine_frame

ROOT = Path(__file__).resolve().parent.parent


def _read(path: Path) -> tuple[np.ndarray, int, int]:
    with wave.open(str(path), "rb") as w:
        assert w.getsampwidth() == 2
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        return data, w.getframerate(), w.getnchannels()


def _voiced_seconds(samples: np.ndarray, rate: int, peak: int = 300) -> float:
    hop = rate // 100
    n = len(samples) // hop
    if n == 0:
        return 0.0
    frames = np.abs(samples[: n * hop].astype(np.int32)).reshape(n, hop)
    return float((frames.max(axis=1) >= peak).sum()) / 100.0


def _write(path: Path, samples: np.ndarray, rate: int, channels: int) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.astype("<i2").tobytes())


def test_console_end_to_end_with_the_offline_example(tmp_path: Path) -> None:
    """The README's first command, on speech generated here (44.1 kHz stereo: resampled)."""
    audio, _ = compose(0.5, "What is the weather like today?", 0.3)
    stereo = np.repeat(resample(audio, 16000, 44100)[:, None], 2, axis=1).reshape(-1)
    wav_in, wav_out = tmp_path / "in.wav", tmp_path / "out.wav"
    _write(wav_in, stereo, 44100, 2)
    env = {**os.environ, "SYNCAGENTS_LOG_LEVEL": "WARNING"}
    out = subprocess.run(
        [sys.executable, "-m", "syncagents.cli", "console", str(ROOT / "examples/echo_agent.py"),
         "--input", str(wav_in), "--output", str(wav_out), "--max-duration", "90"],
        capture_output=True, text=True, timeout=150, env=env, cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "agent: Hello, I am listening."
    user = [line for line in lines if line.startswith("user: ")]
    agent = [line for line in lines if line.startswith("agent: You said")]
    assert user and agent, out.stdout
    assert lines.index(user[0]) < lines.index(agent[0])
    assert "panic" not in out.stderr.lower()

    samples, rate, channels = _read(wav_out)
    assert (rate, channels) == (22050, 1)  # espeak's rate, mono
    # greeting + echo: several seconds of the agent's voice...
    assert _voiced_seconds(samples, rate) > 2.0
    # ...on the real-time timeline: the file spans the whole session, silences included
    assert len(samples) / rate > len(audio) / 16000


def _fake_entrypoint(ctx: JobContext) -> None:
    ctx.connect()
    participant = ctx.wait_for_participant(timeout=10)
    assistant = VoiceAssistant(
        vad=FakeVAD(),
        stt=FakeSTT(["turn on the lights"]),
        llm=FakeLLM(responder=lambda chat_ctx: f"ok: {chat_ctx.messages[-1].content}"),
        tts=FakeTTS(seconds_per_char=0.02),
        min_endpointing_delay=0.2,
    )
    assistant.start(ctx.room, participant)


def test_run_console_with_fakes_speech_then_chat(tmp_path: Path) -> None:
    burst = np.frombuffer(sine_frame(440, 0.6, 16000).data, dtype=np.int16)
    wav_in = tmp_path / "burst.wav"
    _write(wav_in, np.concatenate([silence(0.3), burst, silence(0.2)]), 16000, 1)
    out = io.StringIO()
    result = run_console(
        _fake_entrypoint,
        input_path=str(wav_in),
        output_path=str(tmp_path / "out.wav"),
        texts=["and the heating"],
        idle_s=1.0,
        max_duration=60,
        out=out,
    )
    assert result.exit_code == 0
    assert result.transcript == [
        ("user", "turn on the lights"),
        ("agent", "ok: turn on the lights"),
        ("user", "and the heating"),
        ("agent", "ok: and the heating"),
    ]
    assert out.getvalue().splitlines()[0] == "user: turn on the lights"
    samples, rate, _ = _read(tmp_path / "out.wav")
    assert rate == 24000
    assert _voiced_seconds(samples, rate) > 0.5


def test_failing_entrypoint_exits_non_zero(capsys: pytest.CaptureFixture[str]) -> None:
    def broken(ctx: JobContext) -> None:
        ctx.connect()
        raise RuntimeError("no model configured")

    result = run_console(broken, max_duration=30, out=io.StringIO())
    assert result.exit_code == 1
    assert "RuntimeError: no model configured" in capsys.readouterr().err


def test_input_and_mic_are_exclusive(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "syncagents.cli", "console", str(ROOT / "examples/echo_agent.py"),
         "--input", str(ROOT / "examples/hello.wav"), "--mic"],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 2
    assert "exclusive" in out.stderr


def _burst_wav(path: Path) -> Path:
    burst = np.frombuffer(sine_frame(440, 0.6, 16000).data, dtype=np.int16)
    _write(path, np.concatenate([silence(0.3), burst, silence(0.3)]), 16000, 1)
    return path


def test_lines_print_when_the_assistant_publishes_no_transcriptions(tmp_path: Path) -> None:
    def quiet_entrypoint(ctx: JobContext) -> None:
        ctx.connect()
        participant = ctx.wait_for_participant(timeout=10)
        assistant = VoiceAssistant(
            vad=FakeVAD(),
            stt=FakeSTT(["turn on the lights"]),
            llm=FakeLLM(responder=lambda chat_ctx: f"ok: {chat_ctx.messages[-1].content}"),
            tts=FakeTTS(seconds_per_char=0.02),
            min_endpointing_delay=0.2,
            transcription=False,
        )
        assistant.start(ctx.room, participant)
        assistant.say("Hi! How can I help?", add_to_chat_ctx=False)

    out = io.StringIO()
    result = run_console(
        quiet_entrypoint, input_path=str(_burst_wav(tmp_path / "in.wav")),
        texts=["and the heating"], idle_s=0.5, max_duration=60, out=out,
    )
    assert result.exit_code == 0 and result.reason == "done"
    assert result.transcript == [
        ("agent", "Hi! How can I help?"),  # not cut by the input: the user waited for it
        ("user", "turn on the lights"),
        ("agent", "ok: turn on the lights"),
        ("user", "and the heating"),  # sent by the console and printed once
        ("agent", "ok: and the heating"),
    ]
    printed = [line for line in out.getvalue().splitlines() if not line.startswith("latency:")]
    assert printed == [f"{who}: {text}" for who, text in result.transcript]
    assert [turn.latency is not None for turn in result.turns] == [True, True]


@pytest.mark.parametrize("idle_s", [0.5, 600.0])
def test_a_hand_written_agent_is_waited_for_until_its_entrypoint_returns(
    tmp_path: Path, idle_s: float
) -> None:
    """An STT → TTS loop with no VoiceAssistant whose transcript comes back well after a
    short idle timeout: the console waits for the answer (idle 0.5 s), and ends once the
    entrypoint returned, not after a long idle timeout (600 s)."""

    def hand_written(ctx: JobContext) -> None:
        ctx.connect()
        participant = ctx.wait_for_participant(timeout=10)
        track = next(iter(participant.track_publications.values())).track
        voice = FakeTTS(seconds_per_char=0.02)
        source = rtc.AudioSource(voice.sample_rate, 1)
        ctx.agent.publish_track(rtc.LocalAudioTrack.create_audio_track("voice", source))
        recognizer = FakeSTT(["what time is it"], latency=2.5, streaming=True)
        heard = recognizer.stream()

        def listen() -> None:
            for ev in rtc.AudioStream(track, 16000, 1):
                heard.push_frame(ev.frame)

        ctx.spawn(listen)
        for ev in heard:
            if ev.type is stt.SpeechEventType.FINAL_TRANSCRIPT:
                answer = f"you asked {ev.alternatives[0].text}"
                ctx.agent.publish_transcription(rtc.Transcription(
                    participant_identity=ctx.agent.identity, track_sid="", segments=[
                        rtc.TranscriptionSegment("a1", answer, 0, 0, "en", True),
                    ],
                ))
                for audio in voice.synthesize(answer):
                    source.capture_frame(audio.frame)
                source.wait_for_playout(timeout=30)
                return  # one question, one answer

    out = io.StringIO()
    result = run_console(
        hand_written, input_path=str(_burst_wav(tmp_path / "in.wav")),
        output_path=str(tmp_path / "out.wav"), idle_s=idle_s, max_duration=120, out=out,
    )
    assert result.exit_code == 0
    assert result.reason == "done"  # not cut by max_duration: the entrypoint's return ended it
    assert result.transcript == [("agent", "you asked what time is it")]
    assert result.turns[0].agent_text == "you asked what time is it"
    assert result.turns[0].latency is not None
    samples, rate, _ = _read(tmp_path / "out.wav")
    assert _voiced_seconds(samples, rate) > 0.3


def test_text_lines_from_a_pipe_until_eof() -> None:
    read_fd, write_fd = os.pipe()
    os.write(write_fd, b"turn on the lights\n\n  and the heating  \n")
    os.close(write_fd)
    lines = LineReader(read_fd)
    try:
        result = run_console(
            _fake_entrypoint, lines=lines, idle_s=0.5, max_duration=60, out=io.StringIO()
        )
    finally:
        os.close(read_fd)
    assert result.exit_code == 0
    assert [turn.input for turn in result.turns] == ["turn on the lights", "and the heating"]
    assert [turn.agent_text for turn in result.turns] == [
        "ok: turn on the lights", "ok: and the heating",
    ]


def test_stop_ends_the_run_with_130() -> None:
    stop = gevent.event.Event()

    def entrypoint(ctx: JobContext) -> None:
        _fake_entrypoint(ctx)
        stop.set()  # as Ctrl-C would, once the agent runs

    read_fd, write_fd = os.pipe()  # text mode with nothing typed: it would wait for ever
    try:
        result = run_console(
            entrypoint, lines=LineReader(read_fd), stop=stop, max_duration=60,
            out=io.StringIO(),
        )
    finally:
        os.close(read_fd)
        os.close(write_fd)
    assert result.exit_code == 130 and result.reason == "interrupted"
    assert result.job is not None and not result.job.failed
