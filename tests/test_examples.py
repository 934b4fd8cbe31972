"""The examples: they load as apps, the weather tool is described and run as documented, and
both OpenAI examples hold a conversation end to end against the local OpenAI test server (no
network), in the console's local room."""

from __future__ import annotations

import io
import sys
import wave
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from openai_server import ChatScript, OpenAIServer, ToolCall

from syncagents import WorkerOptions, llm
from syncagents.cli.app_loader import load_app
from syncagents.console import run_console
from syncagents.plugins import espeak, openai
from syncagents.testing import FakeSTT

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load(name: str) -> tuple[WorkerOptions, ModuleType]:
    """The example's WorkerOptions, found as the CLI finds them, and its module."""
    opts = load_app(str(EXAMPLES / name))
    assert isinstance(opts, WorkerOptions)
    assert opts.entrypoint_fnc is not None
    return opts, sys.modules[opts.entrypoint_fnc.__module__]


@pytest.fixture()
def server(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The local OpenAI server, and the environment pointing the examples at it."""
    with OpenAIServer() as srv:
        monkeypatch.setenv("OPENAI_BASE_URL", srv.url)
        monkeypatch.setenv("OPENAI_API_KEY", srv.api_key)
        monkeypatch.setenv("OPENAI_MODEL", "test-model")
        monkeypatch.delenv("SYNCAGENTS_OPENAI_AUDIO", raising=False)
        yield srv


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as w:
        assert (w.getsampwidth(), w.getnchannels()) == (2, 1)
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2"), w.getframerate()


def voiced_segments(samples: np.ndarray, rate: int, gap_s: float = 0.7) -> list[float]:
    """Durations (s) of the stretches of sound, split where it is silent for ``gap_s``."""
    hop = rate // 100
    n = len(samples) // hop
    loud = np.abs(samples[: n * hop].astype(np.int32)).reshape(n, hop).max(axis=1) >= 300
    segments: list[list[int]] = []  # [first, last] 10 ms frame of each stretch
    for i in np.flatnonzero(loud):
        if segments and i - segments[-1][1] <= gap_s * 100:
            segments[-1][1] = int(i)
        else:
            segments.append([int(i), int(i)])
    return [(last - first + 1) / 100 for first, last in segments]


# -- loading -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["assistant.py", "function_calling.py"])
def test_example_loads_as_an_app(name: str) -> None:
    opts, module = load(name)
    assert opts.entrypoint_fnc is module.entrypoint
    assert opts.prewarm_fnc is module.prewarm
    assert opts.agent_name == ""  # automatic dispatch: joins every new room


def test_assistant_switches_to_openai_audio(monkeypatch: pytest.MonkeyPatch) -> None:
    _, assistant = load("assistant.py")
    # constructing the OpenAI plugins opens no connection: an unused port is fine
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-unused")

    monkeypatch.delenv("SYNCAGENTS_OPENAI_AUDIO", raising=False)
    offline_stt = FakeSTT(["hi"])
    speech_to_text, text_to_speech = assistant.speech_plugins({"stt": offline_stt})
    assert speech_to_text is offline_stt  # the prewarmed recognizer
    assert isinstance(text_to_speech, espeak.TTS)

    monkeypatch.setenv("SYNCAGENTS_OPENAI_AUDIO", "1")
    assert set(assistant.prewarm()) == {"vad"}  # no pocketsphinx decoder to load
    speech_to_text, text_to_speech = assistant.speech_plugins({})
    assert isinstance(speech_to_text, openai.STT)
    assert isinstance(text_to_speech, openai.TTS)


# -- the weather tool ----------------------------------------------------------------------------


def test_weather_tool_schema() -> None:
    _, fc = load("function_calling.py")
    functions = fc.WeatherFunctions().ai_functions
    assert list(functions) == ["get_weather"]
    schema = functions["get_weather"].json_schema()
    assert schema["type"] == "function"
    fn = schema["function"]
    assert fn["name"] == "get_weather"
    assert fn["description"]
    params = fn["parameters"]
    assert params["type"] == "object"
    assert params["required"] == ["location"]  # unit has a default
    assert list(params["properties"]) == ["location", "unit"]
    location, unit = params["properties"]["location"], params["properties"]["unit"]
    assert location["type"] == "string" and location["description"]
    assert "enum" not in location
    assert unit["type"] == "string" and unit["description"]
    assert unit["enum"] == ["celsius", "fahrenheit"]


def call_weather(fc: ModuleType, raw_arguments: str) -> llm.CalledFunction:
    call = llm.FunctionCallInfo.create(
        tool_call_id="call_1",
        name="get_weather",
        raw_arguments=raw_arguments,
        fnc_ctx=fc.WeatherFunctions(),
    )
    return call.execute()


def test_weather_tool_runs_with_checked_arguments() -> None:
    _, fc = load("function_calling.py")
    default = call_weather(fc, '{"location": "Paris"}')
    assert default.exception is None
    assert default.call_info.arguments == {"location": "Paris"}  # the default unit applies
    celsius, conditions = fc.made_up_weather("Paris")
    assert default.result == f"{conditions}, {celsius} degrees Celsius in Paris"

    # the model may send the unit in another case; the function gets the enum member
    fahrenheit = call_weather(fc, '{"location": "Paris", "unit": "Fahrenheit"}')
    assert fahrenheit.call_info.arguments["unit"] is fc.Unit.FAHRENHEIT
    expected_f = round(celsius * 9 / 5 + 32)
    assert fahrenheit.result == f"{conditions}, {expected_f} degrees Fahrenheit in Paris"

    # the same place always gets the same weather, whatever the spelling of its name
    assert fc.made_up_weather("  paris ") == (celsius, conditions)
    temps = {fc.made_up_weather(city)[0] for city in ("Oslo", "Lima", "Tokyo", "Cairo", "Paris")}
    assert all(-5 <= t <= 30 for t in temps) and len(temps) > 1

    # a unit outside the enum never reaches the function: the model gets the error
    bad = call_weather(fc, '{"location": "Paris", "unit": "kelvin"}')
    assert isinstance(bad.exception, llm.ToolCallError)
    assert "celsius" in str(bad.exception) and bad.result is None


# -- end to end ----------------------------------------------------------------------------------


@pytest.mark.timeout(90)
def test_function_calling_end_to_end(server: OpenAIServer, tmp_path: Path) -> None:
    """A chat question → the model calls get_weather → its result goes back to the model →
    the model's answer is spoken (espeak) and transcribed, as a user of the console sees it."""
    opts, fc = load("function_calling.py")
    question = "What's the weather in Paris?"
    expected_result = fc.WeatherFunctions().get_weather("Paris", fc.Unit.CELSIUS)
    answer = "It is partly made up, but the weather in Paris looks fine today."
    server.chat.append(
        ChatScript(tool_calls=[ToolCall("get_weather", '{"location": "Paris"}', id="call_w1")])
    )
    server.chat.append(ChatScript(text=answer))
    wav_out = tmp_path / "out.wav"
    assert opts.entrypoint_fnc is not None

    result = run_console(
        opts.entrypoint_fnc,
        prewarm=opts.prewarm_fnc,
        texts=[question],
        output_path=str(wav_out),
        idle_s=1.0,
        max_duration=60,
        out=io.StringIO(),
    )

    assert result.exit_code == 0
    assert result.job is not None and not result.job.failed
    assert result.transcript == [
        ("agent", "Hi! Ask me about the weather anywhere."),
        ("user", question),
        ("agent", answer),
    ]

    chats = server.requests_to("/chat/completions")
    assert len(chats) == 2, [c.json for c in chats]
    first, follow_up = chats[0].json, chats[1].json
    assert first["model"] == "test-model" and first["stream"] is True
    assert first["tools"] == [fc.WeatherFunctions().ai_functions["get_weather"].json_schema()]
    assert first["messages"][0] == {"role": "system", "content": fc.SYSTEM_PROMPT}
    assert first["messages"][-1] == {"role": "user", "content": question}
    # the follow-up is the same conversation plus the model's tool call and its result
    assert len(follow_up["messages"]) == len(first["messages"]) + 2
    assert follow_up["messages"][: len(first["messages"])] == first["messages"]
    call_msg, tool_msg = follow_up["messages"][-2:]
    assert call_msg["role"] == "assistant"
    assert [(c["id"], c["function"]["name"]) for c in call_msg["tool_calls"]] == [
        ("call_w1", "get_weather")
    ]
    assert tool_msg == {"role": "tool", "content": expected_result, "tool_call_id": "call_w1"}

    samples, rate = read_wav(wav_out)
    assert rate == espeak.TTS().sample_rate
    segments = voiced_segments(samples, rate)
    # the greeting, then (after the console's idle second and the two model rounds) the answer
    assert len(segments) >= 2, segments
    assert segments[-1] > 1.0, segments


@pytest.mark.timeout(90)
def test_assistant_with_openai_audio_end_to_end(
    server: OpenAIServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """examples/assistant.py with SYNCAGENTS_OPENAI_AUDIO=1: the model and the voice both come
    from the server (whose speech is a 1 s tone at 24 kHz)."""
    monkeypatch.setenv("SYNCAGENTS_OPENAI_AUDIO", "1")
    opts, assistant = load("assistant.py")
    assert opts.entrypoint_fnc is not None
    wav_out = tmp_path / "out.wav"

    result = run_console(
        opts.entrypoint_fnc,
        prewarm=opts.prewarm_fnc,
        texts=["Tell me a joke"],
        output_path=str(wav_out),
        idle_s=1.0,
        max_duration=60,
        out=io.StringIO(),
    )

    assert result.exit_code == 0
    # the server echoes the last user message when nothing is scripted
    assert result.transcript == [
        ("agent", "Hello! How can I help you today?"),
        ("user", "Tell me a joke"),
        ("agent", "You said: Tell me a joke"),
    ]
    chat = server.requests_to("/chat/completions")
    assert len(chat) == 1 and "tools" not in chat[0].json
    assert chat[0].json["messages"][0] == {"role": "system", "content": assistant.SYSTEM_PROMPT}
    speech = server.requests_to("/audio/speech")
    assert [r.json["input"].strip() for r in speech] == [
        "Hello! How can I help you today?",
        "You said: Tell me a joke",
    ]
    samples, rate = read_wav(wav_out)
    assert rate == 24000
    segments = voiced_segments(samples, rate)
    assert len(segments) == 2 and all(0.8 < s < 1.5 for s in segments), segments
