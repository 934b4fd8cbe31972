"""plugins.openai against a local OpenAI-compatible server (tests/openai_server.py): real SSE
over chunked HTTP, tool calls, retries, errors that never show the key, STT and TTS."""

from __future__ import annotations

import enum
import io
import json
import time
from collections.abc import Iterator
from typing import Annotated

import gevent
import numpy as np
import pytest
from gevent.event import Event
from loguru import logger
from openai_server import ChatScript, Fault, OpenAIServer, ToolCall, check_chat_request
from speech import frames_to_samples, to_frames

from syncagents import Plugin, llm, stt
from syncagents.plugins import openai
from syncagents.plugins.openai._sse import SSEParser


@pytest.fixture()
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer() as srv:
        yield srv


@pytest.fixture()
def logs() -> Iterator[io.StringIO]:
    """Everything logged during the test (to check that no key ever appears)."""
    buf = io.StringIO()
    sink = logger.add(buf, level="DEBUG", format="{message}")
    yield buf
    logger.remove(sink)


def make_llm(server: OpenAIServer, **kw: object) -> openai.LLM:
    kw.setdefault("retry_backoff", 0.01)
    return openai.LLM(base_url=server.url, api_key=server.api_key, **kw)  # type: ignore[arg-type]


def user(text: str) -> llm.ChatContext:
    return llm.ChatContext().append(role="user", text=text)


def text_of(stream: llm.LLMStream) -> str:
    with gevent.Timeout(20):
        return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)


def test_registered() -> None:
    assert any(p.title == "openai" for p in Plugin.registered_plugins)


# -- SSE framing ---------------------------------------------------------------------------------


def feed_all(data: bytes, size: int) -> list[str]:
    parser = SSEParser()
    events = []
    for start in range(0, len(data), size):
        events.extend(parser.feed(data[start : start + size]))
    return [e.data for e in events]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 1000])
def test_sse_parser_any_chunking(size: int) -> None:
    data = (
        "\ufeff: comment\r\n"
        "data: first\r\n\r\n"
        "event: update\ndata: multi\ndata: line\n\n"
        "data:no-space\r\r"
        'data: {"t": "üñï\u2028cödé ✓"}\n\n'  # U+2028 inside JSON is not a line break
        "id: 7\nretry: 10\n\n"  # no data: no event
        "data: [DONE]\n\n"
        "data: unterminated"
    ).encode()
    assert feed_all(data, size) == [
        "first",
        "multi\nline",
        "no-space",
        '{"t": "üñï\u2028cödé ✓"}',
        "[DONE]",
    ]


# -- chat ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("write_size,crlf", [(None, False), (1, False), (7, True)])
def test_streams_text(server: OpenAIServer, write_size: int | None, crlf: bool) -> None:
    text = "Hello there! Ünïcödé ✓ and a 😀 too."
    server.chat.append(ChatScript(text=text, write_size=write_size, crlf=crlf))
    model = make_llm(server, model="my-model", temperature=0.3)
    stream = model.chat(chat_ctx=user("hi"))
    chunks = [c for c in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text
    assert sum(1 for c in chunks if c.choices) >= len(text) // 3  # streamed, not in one piece
    assert all(c.request_id.startswith("chatcmpl-") for c in chunks)
    assert stream.metrics is not None and stream.metrics.total_tokens > 0  # usage chunk

    (req,) = server.requests_to("/chat/completions")
    assert req.headers["Authorization"] == f"Bearer {server.api_key}"
    body = req.json
    assert body["model"] == "my-model" and body["stream"] is True
    assert body["temperature"] == 0.3
    assert body["messages"] == [{"role": "user", "content": "hi"}]
    assert "tools" not in body


def test_chunks_arrive_while_the_server_is_still_writing(server: OpenAIServer) -> None:
    # The server holds the rest of the answer back until the test got the first piece: a
    # client that buffered the body instead of streaming it would time out here.
    gate = Event()
    # writes: role delta, keep-alive comment, "first", then the gate
    server.chat.append(ChatScript(text="first piece, then more", piece_size=5, gate=gate))
    stream = make_llm(server).chat(chat_ctx=user("hi"))
    with gevent.Timeout(5):
        first = next(c for c in stream if c.choices and c.choices[0].delta.content)
    assert first.choices[0].delta.content == "first"
    assert not gate.is_set()
    gate.set()
    assert "first" + text_of(stream) == "first piece, then more"


class Unit(enum.Enum):
    CELSIUS = "celsius"
    FAHRENHEIT = "fahrenheit"


class Tools(llm.FunctionContext):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, object]] = []

    @llm.ai_callable(description="Get the weather in a city")
    def get_weather(
        self,
        city: Annotated[str, llm.TypeInfo(description="The city")],
        unit: Annotated[Unit, llm.TypeInfo(description="Unit")] = Unit.CELSIUS,
    ) -> str:
        self.calls.append(("get_weather", (city, unit)))
        return f"sunny in {city}"

    @llm.ai_callable(description="Count to a number")
    def count(self, to: int) -> int:
        self.calls.append(("count", to))
        return to


@pytest.mark.parametrize("omit_index", [False, True])
def test_streams_tool_calls(server: OpenAIServer, omit_index: bool) -> None:
    server.chat.append(
        ChatScript(
            text="Let me check.",
            tool_calls=[
                ToolCall("get_weather", '{"city": "Paris", "unit": "fahrenheit"}', id="call_a"),
                ToolCall("count", '{"to": 3}', id="call_b"),
            ],
            piece_size=4,
            omit_index=omit_index,
        )
    )
    tools = Tools()
    stream = make_llm(server).chat(chat_ctx=user("weather?"), fnc_ctx=tools)
    assert text_of(stream) == "Let me check."
    calls = stream.function_calls
    assert [(c.tool_call_id, c.name) for c in calls] == [
        ("call_a", "get_weather"),
        ("call_b", "count"),
    ]
    assert calls[0].raw_arguments == '{"city": "Paris", "unit": "fahrenheit"}'
    assert calls[0].arguments == {"city": "Paris", "unit": Unit.FAHRENHEIT}
    assert calls[1].arguments == {"to": 3}
    results = stream.execute_functions(timeout=5)
    assert [r.result for r in results] == ["sunny in Paris", 3]

    body = server.requests_to("/chat/completions")[0].json
    tools_sent = {t["function"]["name"]: t for t in body["tools"]}
    assert set(tools_sent) == {"get_weather", "count"}
    params = tools_sent["get_weather"]["function"]["parameters"]
    assert params["properties"]["unit"]["enum"] == ["celsius", "fahrenheit"]
    assert params["required"] == ["city"]
    assert tools_sent["count"]["function"]["parameters"]["properties"]["to"]["type"] == "integer"


def test_tool_round_trip_messages(server: OpenAIServer) -> None:
    server.chat.append(ChatScript(tool_calls=[ToolCall("count", '{"to": 2}', id="call_x")]))
    server.chat.append(ChatScript(text="Counted to 2."))
    tools = Tools()
    model = make_llm(server)
    ctx = llm.ChatContext().append(role="system", text="Be brief.").append(role="user", text="go")
    stream = model.chat(chat_ctx=ctx, fnc_ctx=tools)
    text_of(stream)
    called = stream.execute_functions(timeout=5)
    ctx.messages.append(llm.ChatMessage.create_tool_calls(stream.function_calls))
    ctx.messages.extend(llm.ChatMessage.create_tool_from_called_function(c) for c in called)
    assert text_of(model.chat(chat_ctx=ctx, fnc_ctx=tools)) == "Counted to 2."

    messages = server.requests_to("/chat/completions")[1].json["messages"]
    assert messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "go"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_x", "type": "function",
                 "function": {"name": "count", "arguments": '{"to": 2}'}}
            ],
        },
        {"role": "tool", "content": "2", "tool_call_id": "call_x"},
    ]


# -- retries and errors --------------------------------------------------------------------------


def test_retries_500_429_and_resets_then_succeeds(server: OpenAIServer, logs: io.StringIO) -> None:
    server.faults.extend([Fault(status=500), Fault(status=429, retry_after=0.02),
                          Fault(kind="reset"), Fault(status=503)])
    start = time.monotonic()
    assert text_of(make_llm(server, max_retries=4).chat(chat_ctx=user("hi"))) == "You said: hi"
    assert len(server.requests_to("/chat/completions")) == 5
    assert time.monotonic() - start < 5
    assert logs.getvalue().count("retrying") == 4
    assert server.api_key not in logs.getvalue()


def test_gives_up_after_max_retries(server: OpenAIServer) -> None:
    server.faults.extend([Fault(status=502)] * 5)
    with pytest.raises(openai.APIStatusError) as info:
        text_of(make_llm(server, max_retries=2).chat(chat_ctx=user("hi")))
    assert info.value.status == 502
    assert "3 attempts" in str(info.value)
    assert len(server.requests_to("/chat/completions")) == 3


def test_unauthorized_fails_at_once_without_the_key(
    server: OpenAIServer, logs: io.StringIO
) -> None:
    secret = "sk-wrong-" + "x7" * 20
    model = openai.LLM(base_url=server.url, api_key=secret, retry_backoff=0.01)
    with pytest.raises(openai.APIError) as info:
        text_of(model.chat(chat_ctx=user("hi")))
    err = info.value
    assert err.status == 401
    assert "rejected" in str(err)
    # the server echoed the key back in its message: the client redacted it everywhere
    assert secret not in str(err) and secret not in repr(err.body) and secret not in repr(err)
    assert secret not in repr(model._client)
    assert secret not in logs.getvalue()
    assert len(server.requests) == 1  # no retry


def test_not_found_fails_at_once(server: OpenAIServer) -> None:
    with pytest.raises(openai.APIStatusError) as info:
        text_of(make_llm(server, model="missing-model").chat(chat_ctx=user("hi")))
    assert info.value.status == 404 and "missing-model" in str(info.value)
    assert len(server.requests) == 1


def test_read_timeout(server: OpenAIServer) -> None:
    server.faults.append(Fault(kind="stall", seconds=3))
    model = make_llm(server, timeout=(2.0, 0.3), max_retries=0)
    start = time.monotonic()
    with pytest.raises(openai.APITimeoutError) as info:
        text_of(model.chat(chat_ctx=user("hi")))
    assert isinstance(info.value, TimeoutError)
    assert time.monotonic() - start < 2.5


def test_connection_refused(server: OpenAIServer) -> None:
    url = server.url
    server.close()
    model = openai.LLM(base_url=url, api_key="k", max_retries=1, retry_backoff=0.01)
    with pytest.raises(openai.APIConnectionError):
        text_of(model.chat(chat_ctx=user("hi")))


def test_stream_cut_midway_is_an_error_not_a_retry(server: OpenAIServer) -> None:
    server.chat.append(ChatScript(text="a fairly long answer that gets cut", piece_size=2))
    server.faults.append(Fault(kind="cut", after_events=4))
    stream = make_llm(server).chat(chat_ctx=user("hi"))
    got = []
    with pytest.raises(openai.APIConnectionError):
        for chunk in stream:
            got.append(chunk.choices[0].delta.content if chunk.choices else None)
    assert got  # what came before the cut was delivered
    assert len(server.requests) == 1


def test_stream_without_end_is_an_error(server: OpenAIServer) -> None:
    server.chat.append(ChatScript(text="truncated", done=False, finish=False))
    with pytest.raises(openai.APIConnectionError, match="ended early"):
        text_of(make_llm(server).chat(chat_ctx=user("hi")))


def test_error_event_inside_the_stream(server: OpenAIServer) -> None:
    server.chat.append(ChatScript(text="some text", error_after=3))
    with pytest.raises(openai.APIStatusError, match="the model crashed"):
        text_of(make_llm(server).chat(chat_ctx=user("hi")))


def test_close_stops_the_request(server: OpenAIServer) -> None:
    server.chat.append(ChatScript(text="x" * 200, piece_size=1, delay=0.05))
    stream = make_llm(server).chat(chat_ctx=user("hi"), timeout=10)
    next(iter(stream))
    stream.close()
    assert list(stream) == []


def test_missing_key_for_openai_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(ValueError, match="OPENAI_API_KEY"):
        openai.LLM()


def test_environment_defaults(server: OpenAIServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", server.url)
    monkeypatch.setenv("OPENAI_API_KEY", server.api_key)
    model = openai.LLM()
    assert model.base_url == server.url
    assert text_of(model.chat(chat_ctx=user("env"))) == "You said: env"


# -- STT -----------------------------------------------------------------------------------------


def test_stt_uploads_a_wav(server: OpenAIServer) -> None:
    engine = openai.STT(base_url=server.url, api_key=server.api_key, language="en-US",
                        prompt="weather words")
    assert engine.capabilities.streaming is False
    tone = (np.sin(np.arange(24000) / 48000 * 2 * np.pi * 440) * 8000).astype(np.int16)
    event = engine.recognize(to_frames(tone, 48000, 10, num_channels=2), timeout=10)
    assert event.type is stt.SpeechEventType.FINAL_TRANSCRIPT
    assert event.text == server.transcript
    assert event.alternatives[0].end_time == pytest.approx(0.5)
    (upload,) = server.uploads
    assert upload.fields == {"model": "whisper-1", "response_format": "json", "language": "en",
                             "prompt": "weather words"}
    assert upload.filename.endswith(".wav") and upload.content_type == "audio/wav"
    assert (upload.sample_rate, upload.num_channels) == (48000, 1)  # downmixed
    np.testing.assert_array_equal(upload.samples, tone)


def test_stt_retries_then_fails_clearly(server: OpenAIServer) -> None:
    server.faults.append(Fault(status=500, path="/audio/transcriptions"))
    engine = openai.STT(base_url=server.url, api_key=server.api_key, retry_backoff=0.01)
    frames = to_frames(np.zeros(1600, dtype=np.int16))
    assert engine.recognize(frames, timeout=10).text == server.transcript
    bad = openai.STT(base_url=server.url, api_key="sk-nope-123456789")
    with pytest.raises(openai.APIError) as info:
        bad.recognize(frames, timeout=10)
    assert info.value.status == 401 and "sk-nope-123456789" not in str(info.value)


# -- TTS -----------------------------------------------------------------------------------------


def test_tts_pcm(server: OpenAIServer) -> None:
    engine = openai.TTS(base_url=server.url, api_key=server.api_key, voice="nova", speed=1.2)
    assert (engine.sample_rate, engine.num_channels) == (24000, 1)
    frames = engine.synthesize("Hello!").collect(timeout=10)
    assert {f.sample_rate for f in frames} == {24000}
    assert {f.samples_per_channel for f in frames[:-1]} == {480}  # 20 ms
    expected = np.frombuffer(server.sine_pcm(), dtype="<i2")
    np.testing.assert_array_equal(frames_to_samples(frames), expected)
    body = server.requests_to("/audio/speech")[0].json
    assert body == {"model": "tts-1", "input": "Hello!", "voice": "nova",
                    "response_format": "pcm", "speed": 1.2}


def dominant_frequency(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64)))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[int(np.argmax(spectrum))])


def test_tts_mp3(server: OpenAIServer) -> None:
    engine = openai.TTS(base_url=server.url, api_key=server.api_key, response_format="mp3")
    frames = engine.synthesize("Hello!").collect(timeout=10)
    samples = frames_to_samples(frames)
    assert {f.sample_rate for f in frames} == {24000}
    assert abs(len(samples) / 24000 - server.speech_seconds) < 0.15  # encoder padding
    assert abs(dominant_frequency(samples, 24000) - server.speech_freq) < 5


def test_tts_resampled_and_retried(server: OpenAIServer) -> None:
    server.faults.append(Fault(status=503, path="/audio/speech"))
    engine = openai.TTS(base_url=server.url, api_key=server.api_key, sample_rate=16000,
                        retry_backoff=0.01)
    frames = engine.synthesize("Hello!").collect(timeout=10)
    samples = frames_to_samples(frames)
    assert {f.sample_rate for f in frames} == {16000}
    assert abs(len(samples) / 16000 - server.speech_seconds) < 0.05
    assert abs(dominant_frequency(samples, 16000) - server.speech_freq) < 5
    assert len(server.requests_to("/audio/speech")) == 2


def test_tts_cut_midway(server: OpenAIServer) -> None:
    server.faults.append(Fault(kind="cut", after_events=5, path="/audio/speech"))
    engine = openai.TTS(base_url=server.url, api_key=server.api_key)
    with pytest.raises(openai.APIConnectionError):
        engine.synthesize("Hello!").collect(timeout=10)


def test_bad_tts_format() -> None:
    with pytest.raises(ValueError):
        openai.TTS(base_url="http://127.0.0.1:9", api_key="k", response_format="ogg")  # type: ignore[arg-type]


def test_json_roundtrip_of_errors_keeps_status(server: OpenAIServer) -> None:
    # the error body is kept (redacted) for callers that want the server's details
    with pytest.raises(openai.APIStatusError) as info:
        text_of(make_llm(server, model="missing-model").chat(chat_ctx=user("hi")))
    body = info.value.body
    assert isinstance(body, dict) and json.dumps(body)
    assert body["error"]["code"] == "model_not_found"


# -- strict servers: repaired tool calls, tool options, strict schemas, images -----------------


def test_malformed_tool_arguments_never_reach_a_strict_server(server: OpenAIServer) -> None:
    server.chat.append(ChatScript(tool_calls=[
        ToolCall("count", "{'to': 3,}<|im_end|>", id="call_r"),  # repairable
        ToolCall("get_weather", '{"city" Paris', id="call_h"),  # hopeless
        ToolCall("get_weather", '```json\n{"city": "Oslo"\n```', id="call_f"),
    ]))
    server.chat.append(ChatScript(text="Done."))
    tools = Tools()
    model = make_llm(server)
    ctx = user("go")
    stream = model.chat(chat_ctx=ctx, fnc_ctx=tools)
    text_of(stream)
    called = stream.execute_functions(timeout=5)
    assert [c.result for c in called] == [3, None, "sunny in Oslo"]
    ctx.messages.append(llm.ChatMessage.create_tool_calls(stream.function_calls))
    ctx.messages.extend(llm.ChatMessage.create_tool_from_called_function(c) for c in called)
    assert text_of(model.chat(chat_ctx=ctx, fnc_ctx=tools)) == "Done."
    assert server.rejected == []

    follow = server.requests_to("/chat/completions")[1].json["messages"]
    sent = [c["function"]["arguments"] for c in follow[1]["tool_calls"]]
    assert sent == ['{"to": 3}', "{}", '{"city": "Oslo"}']
    results = {m["tool_call_id"]: m["content"] for m in follow[2:]}
    assert results["call_r"] == "3"
    assert results["call_h"].startswith("error: the arguments for get_weather are not valid JSON")
    assert ("count", 3) in tools.calls and len(tools.calls) == 2


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"messages": [{"role": "assistant", "content": None, "tool_calls": [
            {"id": "a", "type": "function", "function": {"name": "f", "arguments": '{"x": 1'}}
        ]}]}, "not valid JSON"),
        ({"messages": [{"role": "tool", "content": "1", "tool_call_id": "zz"}]},
         "must answer a preceding tool call"),
        ({"messages": [{"role": "user", "content": "hi"}], "tool_choice": "auto"},
         "only allowed when 'tools'"),
        ({"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}]},
         "not image/png"),
        ({"messages": [{"role": "user", "content": "x"}], "tools": [
            {"type": "function", "function": {"name": "f", "strict": True, "parameters": {
                "type": "object", "properties": {"a": {"type": "string"}}}}}]},
         "additionalProperties"),
    ],
)
def test_the_test_server_is_strict(body: dict[str, object], fragment: str) -> None:
    problem = check_chat_request(body)
    assert problem is not None and fragment in problem


def test_strict_server_answers_400_to_broken_requests(server: OpenAIServer) -> None:
    # a plugin bypassing the chat context's serialisation would be caught
    model = make_llm(server, max_retries=0)
    original = model._request_body

    def broken_body(*args: object, **kwargs: object) -> dict[str, object]:
        body = original(*args, **kwargs)  # type: ignore[arg-type]
        body["messages"] = [*body["messages"], {"role": "assistant", "content": None,  # type: ignore[list-item]
            "tool_calls": [{"id": "a", "type": "function",
                            "function": {"name": "count", "arguments": "{'to': 1"}}]}]
        return body

    model._request_body = broken_body  # type: ignore[method-assign]
    with pytest.raises(openai.APIStatusError) as info:
        text_of(model.chat(chat_ctx=user("hi")))
    assert info.value.status == 400 and len(server.rejected) == 1


def test_tool_choice_and_parallel_tool_calls_in_requests(server: OpenAIServer) -> None:
    tools = Tools()
    model = make_llm(server, tool_choice="auto", parallel_tool_calls=True)
    text_of(model.chat(chat_ctx=user("a"), fnc_ctx=tools))
    text_of(model.chat(chat_ctx=user("b"), fnc_ctx=tools, tool_choice="count",
                       parallel_tool_calls=False))
    text_of(model.chat(chat_ctx=user("c"), fnc_ctx=tools, tool_choice="none"))
    text_of(model.chat(chat_ctx=user("d")))  # no tools: no tool options either
    bodies = [r.json for r in server.requests_to("/chat/completions")]
    assert [(b.get("tool_choice"), b.get("parallel_tool_calls")) for b in bodies] == [
        ("auto", True),
        ({"type": "function", "function": {"name": "count"}}, False),
        ("none", True),
        (None, None),
    ]
    assert "tools" not in bodies[3] and server.rejected == []
    with pytest.raises(ValueError, match="not among the tools"):
        model.chat(chat_ctx=user("e"), fnc_ctx=tools, tool_choice="missing")


def test_strict_tool_schemas_are_accepted(server: OpenAIServer) -> None:
    server.chat.append(ChatScript(tool_calls=[
        ToolCall("get_weather", '{"city": "Rome", "unit": null}', id="s1")]))
    tools = Tools()
    stream = make_llm(server, strict_tool_schema=True).chat(chat_ctx=user("x"), fnc_ctx=tools)
    text_of(stream)
    assert stream.execute_functions(timeout=5)[0].result == "sunny in Rome"
    assert tools.calls == [("get_weather", ("Rome", Unit.CELSIUS))]
    sent = server.requests_to("/chat/completions")[0].json["tools"]
    assert all(t["function"]["strict"] is True for t in sent)
    params = {t["function"]["name"]: t["function"]["parameters"] for t in sent}
    assert params["get_weather"]["required"] == ["city", "unit"]
    assert params["get_weather"]["additionalProperties"] is False
    assert server.rejected == []


def test_images_are_sent_to_vision_models(server: OpenAIServer) -> None:
    import av
    from livekit import rtc

    rgb = np.zeros((4, 4, 3), np.uint8)
    png_ctx = av.CodecContext.create("png", "w")
    png_ctx.width, png_ctx.height, png_ctx.pix_fmt = 4, 4, "rgb24"  # type: ignore[attr-defined]
    png = b"".join(bytes(p) for p in png_ctx.encode(  # type: ignore[attr-defined]
        av.VideoFrame.from_ndarray(rgb, format="rgb24")))
    frame = rtc.VideoFrame(64, 32, rtc.VideoBufferType.RGBA, bytes(64 * 32 * 4))
    ctx = llm.ChatContext().append(role="system", text="You see images.").append(
        role="user", text="What is this?",
        images=[llm.ChatImage(image=png, inference_detail="high"),
                llm.ChatImage(image=frame, inference_width=32, inference_height=32)])
    assert text_of(make_llm(server).chat(chat_ctx=ctx)).startswith("You said:")
    assert server.rejected == []
    content = server.requests_to("/chat/completions")[0].json["messages"][1]["content"]
    assert content[0] == {"type": "text", "text": "What is this?"}
    assert content[1]["image_url"]["detail"] == "high"
    assert content[1]["image_url"]["url"].startswith("data:image/png;base64,")
    assert content[2]["image_url"]["url"].startswith("data:image/jpeg;base64,")
