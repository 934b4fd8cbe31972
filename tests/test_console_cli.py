"""``syncagents console`` as a user runs it (subprocesses): errors before the agent starts,
any audio format as input, text mode on stdin, Ctrl-C, log format.

The app under test is written to a temporary folder: a VoiceAssistant on the fake plugins that
greets, hears one utterance as "turn on the lights" and answers ``ok: <what it heard>``. Its
entrypoint leaves a marker file, so a test can tell whether the agent was started at all.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import wave
from pathlib import Path

import av
import gevent
import numpy as np
import pytest

from syncagents.utils.audio import sine_frame

APP = textwrap.dedent(
    """
    import os

    from syncagents import JobContext, VoiceAssistant
    from syncagents.testing import FakeLLM, FakeSTT, FakeTTS, FakeVAD


    def entrypoint(ctx: JobContext) -> None:
        open(os.environ["CONSOLE_TEST_MARKER"], "w").close()
        ctx.connect()
        participant = ctx.wait_for_participant(timeout=10)
        assistant = VoiceAssistant(
            vad=FakeVAD(),
            stt=FakeSTT(["turn on the lights"]),
            llm=FakeLLM(responder=lambda chat_ctx: "ok: " + chat_ctx.messages[-1].content),
            tts=FakeTTS(seconds_per_char=0.03),
            min_endpointing_delay=0.2,
        )
        assistant.start(ctx.room, participant)
        assistant.say("Hi! How can I help?")  # interruptible: the user must wait for it
    """
)
GREETING = "agent: Hi! How can I help?"
WAIT = 60  # seconds: bound on any single wait for the subprocess


@pytest.fixture
def app(tmp_path: Path) -> Path:
    path = tmp_path / "fake_app.py"
    path.write_text(APP)
    return path


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "SYNCAGENTS_LOG_LEVEL"}
    env["CONSOLE_TEST_MARKER"] = str(tmp_path / "agent-started")
    return env


def _console(app: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "syncagents.cli", "console", str(app), *args],
        input=stdin, capture_output=True, text=True, timeout=180, env=_env(app.parent),
        cwd=app.parent,
    )


def _burst(rate: int = 16000) -> np.ndarray:
    """0.3 s of silence, a 0.6 s tone (speech to the fake VAD), 0.3 s of silence."""
    tone = np.frombuffer(sine_frame(440, 0.6, rate, amplitude=0.3).data, dtype=np.int16)
    pad = np.zeros(int(0.3 * rate), dtype=np.int16)
    return np.concatenate([pad, tone, pad])


def _write_wav(path: Path, samples: np.ndarray, rate: int, channels: int = 1) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.repeat(samples, channels).astype("<i2").tobytes())
    return path


def encode(path: Path, samples: np.ndarray, rate: int, codec: str, channels: int = 1) -> Path:
    """Encode mono int16 ``samples`` with PyAV (the container follows the file suffix)."""
    layout = "mono" if channels == 1 else "stereo"
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate, layout=layout)
        pcm = np.repeat(samples, channels).reshape(1, -1)
        for start in range(0, samples.size, 1024):
            chunk = np.ascontiguousarray(pcm[:, start * channels : (start + 1024) * channels])
            frame = av.AudioFrame.from_ndarray(chunk, format="s16", layout=layout)
            frame.sample_rate = rate
            frame.pts = start
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def _voiced_seconds(path: Path) -> float:
    with wave.open(str(path), "rb") as w:
        assert (w.getsampwidth(), w.getnchannels()) == (2, 1)
        rate = w.getframerate()
        samples = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    hop = rate // 100
    n = len(samples) // hop
    loud = np.abs(samples[: n * hop].astype(np.int32)).reshape(n, hop).max(axis=1) >= 300
    return float(loud.sum()) / 100


def _bad_cases(tmp: Path) -> dict[str, tuple[list[str], str]]:
    burst = _write_wav(tmp / "burst.wav", _burst(), 16000)
    (tmp / "empty.wav").write_bytes(b"")
    _write_wav(tmp / "no-samples.wav", np.zeros(0, dtype=np.int16), 16000)
    (tmp / "notes.txt").write_text("not audio\n")
    return {
        "output folder missing": (
            ["--input", str(burst), "--output", str(tmp / "missing" / "out.wav")], "missing"
        ),
        "empty input": (["--input", str(tmp / "empty.wav")], "empty"),
        "input without samples": (["--input", str(tmp / "no-samples.wav")], "no audio"),
        "input not audio": (["--input", str(tmp / "notes.txt")], "cannot read"),
        "input missing": (["--input", str(tmp / "nope.wav")], "cannot read"),
        "bad log level": (["--log-level", "foo"], "log-level"),
        "input and mic": (["--input", str(burst), "--mic"], "exclusive"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "output folder missing",
        "empty input",
        "input without samples",
        "input not audio",
        "input missing",
        "bad log level",
        "input and mic",
    ],
)
def test_bad_invocations_fail_at_once_on_one_line(app: Path, case: str) -> None:
    args, words = _bad_cases(app.parent)[case]
    out = _console(app, *args)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), out.stderr
    assert words in lines[0]
    assert out.stdout == ""
    assert not (app.parent / "agent-started").exists()  # failed before the agent started


def test_mp3_input_waits_for_the_greeting_and_prints_the_latency(app: Path) -> None:
    """Stereo 44.1 kHz MP3 in; the greeting plays out before the user speaks (it is
    interruptible, so speaking over it would cut it); one latency line for the turn."""
    mp3 = encode(app.parent / "burst.mp3", _burst(44100), 44100, "mp3", channels=2)
    wav_out = app.parent / "out.wav"
    out = _console(app, "--input", str(mp3), "--output", str(wav_out), "--idle-timeout", "1")
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == GREETING
    assert [line for line in lines if not line.startswith("latency: ")] == [
        GREETING,
        "user: turn on the lights",
        "agent: ok: turn on the lights",
    ]
    latency = [line for line in lines if line.startswith("latency: ")]
    assert len(latency) == 1 and latency[0].endswith(" ms")
    assert lines.index(latency[0]) > lines.index("user: turn on the lights")
    assert _voiced_seconds(wav_out) > 1.0  # greeting and answer


def test_text_mode_sends_each_stdin_line_as_a_chat_message(app: Path) -> None:
    wav_out = app.parent / "out.wav"
    out = _console(
        app, "--output", str(wav_out), "--idle-timeout", "1",
        stdin="turn on the lights\n\nand the heating\n",
    )
    assert out.returncode == 0, out.stderr
    lines = [line for line in out.stdout.splitlines() if not line.startswith("latency: ")]
    assert lines == [
        GREETING,
        "user: turn on the lights",
        "agent: ok: turn on the lights",
        "user: and the heating",
        "agent: ok: and the heating",
    ]
    assert _voiced_seconds(wav_out) > 1.0


def test_ctrl_c_exits_130_with_a_valid_wav(app: Path) -> None:
    wav_out = app.parent / "out.wav"
    proc = subprocess.Popen(
        [sys.executable, "-m", "syncagents.cli", "console", str(app), "--output", str(wav_out)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=_env(app.parent), cwd=app.parent,
    )
    try:
        # text mode with stdin left open: it would run until EOF; the greeting shows it runs
        with gevent.Timeout(WAIT):
            assert proc.stdout is not None
            assert proc.stdout.readline().rstrip("\n") == GREETING
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=WAIT)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    assert _voiced_seconds(wav_out) > 0.3  # a finished WAV holding the greeting


def test_logs_follow_log_format(app: Path) -> None:
    out = _console(app, "--log-level", "DEBUG", "--log-format", "json", "--idle-timeout", "0.5")
    assert out.returncode == 0, out.stderr
    records = [json.loads(line) for line in out.stderr.splitlines() if line.strip()]
    assert records and all("level" in r and "message" in r for r in records)
    assert out.stdout.splitlines() == [GREETING]  # stdin was empty: text mode ends at once
