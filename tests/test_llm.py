"""Chat contexts, the OpenAI message form, and LLMStream driven by FakeLLM and small plugins."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Annotated

import gevent
import gevent.event
import pytest

from syncagents import llm, runtime
from syncagents.testing.fake_llm import FakeLLM, FakeResponse, FakeToolCall


def _text(stream: llm.LLMStream) -> str:
    return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)


# -- chat context ---------------------------------------------------------------------------


def test_append_chains_and_validates_roles() -> None:
    ctx = llm.ChatContext().append(role="system", text="be brief").append(role="user", text="hi")
    assert [(m.role, m.content) for m in ctx.messages] == [("system", "be brief"), ("user", "hi")]
    assert llm.ChatMessage("assistant", "yo").tool_calls is None
    with pytest.raises(ValueError):
        llm.ChatMessage("robot", "?")  # type: ignore[arg-type]


def test_copy_is_independent() -> None:
    call = llm.FunctionCallInfo.create(tool_call_id="c1", name="f", raw_arguments='{"a": 1}')
    call.arguments = {"a": [1]}
    ctx = llm.ChatContext().append(role="user", text="hi")
    ctx.messages.append(llm.ChatMessage.create_tool_calls([call]))
    dup = ctx.copy()

    dup.append(role="user", text="more")
    dup.messages[0].content = "changed"
    assert dup.messages[1].tool_calls is not None
    dup.messages[1].tool_calls.append(call)
    dup.messages[1].tool_calls[0].arguments["a"].append(2)
    dup.messages[1].tool_calls[0].raw_arguments = "{}"

    assert len(ctx.messages) == 2
    assert ctx.messages[0].content == "hi"
    assert ctx.messages[1].tool_calls == [call]
    assert call.arguments == {"a": [1]} and call.raw_arguments == '{"a": 1}'

    ctx.append(role="assistant", text="only in the original")
    assert len(dup.messages) == 3


def test_to_openai_messages_with_tool_calls_and_results() -> None:
    call = llm.FunctionCallInfo.create(tool_call_id="call_1", name="lookup",
                                       raw_arguments='{"q": "x"}')
    called = llm.CalledFunction(call_info=call, result={"hits": 2})
    ctx = (
        llm.ChatContext()
        .append(role="system", text="sys")
        .append(role="user", text="find x")
    )
    ctx.messages.append(llm.ChatMessage.create_tool_calls([call]))
    ctx.messages.append(llm.ChatMessage.create_tool_from_called_function(called))
    ctx.append(role="assistant", text="found 2")
    assert ctx.to_openai() == llm.to_openai_messages(ctx) == [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "find x"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "lookup", "arguments": '{"q": "x"}'}},
            ],
        },
        {"role": "tool", "content": '{"hits": 2}', "tool_call_id": "call_1"},
        {"role": "assistant", "content": "found 2"},
    ]


# -- LLMStream over FakeLLM -----------------------------------------------------------------


class Calculator(llm.FunctionContext):
    @llm.ai_callable(description="Multiply")
    def multiply(self, a: Annotated[int, llm.TypeInfo(description="a")],
                 b: Annotated[float, llm.TypeInfo(description="b")] = 2.0) -> float:
        return a * b

    @llm.ai_callable(description="Fails")
    def fail(self) -> None:
        raise RuntimeError("broken tool")


def test_text_streams_in_word_chunks_with_metrics() -> None:
    fake = FakeLLM(["Hello there, friend."])
    seen: list[llm.LLMMetrics] = []
    fake.on("metrics_collected", seen.append)
    ctx = llm.ChatContext().append(role="user", text="say hello please")
    with fake.chat(chat_ctx=ctx) as stream:
        chunks = list(stream)
    contents = [c.choices[0].delta.content for c in chunks if c.choices]
    assert contents == ["Hello ", "there, ", "friend."]
    assert all(c.choices[0].delta.role == "assistant" for c in chunks if c.choices)
    assert all(c.request_id == "fake-1" for c in chunks)
    assert stream.function_calls == []
    m = stream.metrics
    assert m is not None and seen == [m]
    assert m.request_id == "fake-1" and not m.cancelled and m.error is None
    assert m.completion_tokens == 3 and m.prompt_tokens == 3 and m.total_tokens == 6
    assert 0 <= m.ttft <= m.duration
    assert m.label.endswith("FakeLLM")


def test_latencies_are_applied() -> None:
    fake = FakeLLM(["one two three"], ttft=0.15, per_chunk_delay=0.05)
    t0 = time.monotonic()
    stream = fake.chat(llm.ChatContext().append(role="user", text="count"), timeout=10)
    first = next(stream)
    t_first = time.monotonic() - t0
    rest = list(stream)
    total = time.monotonic() - t0
    assert first.choices[0].delta.content == "one "
    assert len(rest) == 3  # two words and the usage chunk
    assert t_first >= 0.14
    assert total >= 0.24
    assert stream.metrics is not None and stream.metrics.ttft >= 0.14


def test_tool_calls_are_collected_resolved_and_executed() -> None:
    fake = FakeLLM([
        FakeResponse(
            text="Let me compute.",
            tool_calls=[
                FakeToolCall("multiply", {"a": "6", "b": 7}, id="call_a"),
                {"name": "multiply", "arguments": {"b": 1}},
                ("fail", {}),
                FakeToolCall("missing_tool", {}),
                FakeToolCall("multiply", '{"a": 1, "b" 2}', id="broken"),
            ],
        ),
        "The answer is 42.",
    ])
    fnc = Calculator()
    ctx = llm.ChatContext().append(role="user", text="6 times 7?")
    stream = fake.chat(ctx, fnc_ctx=fnc, temperature=0.3)
    text = _text(stream)
    assert text == "Let me compute."
    calls = stream.function_calls
    assert [c.name for c in calls] == ["multiply", "multiply", "fail", "missing_tool", "multiply"]
    assert calls[0].tool_call_id == "call_a"
    assert calls[0].arguments == {"a": 6, "b": 7.0} and isinstance(calls[0].arguments["b"], float)
    assert calls[0].function_info is fnc.ai_functions["multiply"]
    assert calls[1].error is not None and calls[2].error is None
    assert calls[3].function_info is None and calls[4].error is not None

    results = stream.execute_functions(timeout=10)
    assert results[0].result == 42.0
    messages = [llm.ChatMessage.create_tool_from_called_function(r) for r in results]
    assert messages[0].content == "42.0"
    for msg, start in zip(messages[1:], [
        "error: invalid arguments for multiply: argument 'a' is required",
        "error: RuntimeError: broken tool",
        "error: unknown function 'missing_tool'",
        "error: the arguments for multiply are not valid JSON",
    ]):
        assert msg.content is not None and msg.content.startswith(start), msg.content
    assert [m.tool_call_id for m in messages] == ["call_a", *(c.tool_call_id for c in calls[1:])]

    # the tool round trip goes back to the model, which answers with text
    follow = stream.chat_ctx.copy()
    follow.messages.append(llm.ChatMessage.create_tool_calls(calls, text=text))
    follow.messages.extend(messages)
    assert _text(fake.chat(follow, fnc_ctx=fnc)) == "The answer is 42."
    assert fake.requests[0].temperature == 0.3 and fake.requests[0].fnc_ctx is fnc
    assert [m.role for m in fake.calls[1].messages] == ["user", "assistant"] + ["tool"] * 5
    sent_calls = fake.calls[1].to_openai()[1]["tool_calls"]
    assert sent_calls[0]["id"] == "call_a"
    # the unreadable arguments never go back to the model: "{}" and an error result instead
    assert sent_calls[4]["function"]["arguments"] == "{}"
    assert calls[4].original_arguments == '{"a": 1, "b" 2}'


def test_calls_without_a_function_context_are_errors() -> None:
    fake = FakeLLM([[("multiply", {"a": 1})]])
    stream = fake.chat(llm.ChatContext().append(role="user", text="x"))
    list(stream)
    [called] = stream.execute_functions()
    assert isinstance(called.exception, llm.ToolCallError)


def test_stream_snapshots_the_context() -> None:
    fake = FakeLLM(["ok"])
    ctx = llm.ChatContext().append(role="user", text="first")
    stream = fake.chat(ctx)
    ctx.append(role="user", text="added after chat()")
    assert _text(stream) == "ok"
    assert [m.content for m in fake.calls[0].messages] == ["first"]
    assert [m.content for m in stream.chat_ctx.messages] == ["first"]


def test_responder_and_wait_for_calls() -> None:
    def echo(ctx: llm.ChatContext) -> str:
        return f"you said: {ctx.messages[-1].content}"

    fake = FakeLLM(["scripted first"], responder=echo)
    assert _text(fake.chat(llm.ChatContext().append(role="user", text="a"))) == "scripted first"

    def later() -> str:
        return _text(fake.chat(llm.ChatContext().append(role="user", text="ping pong")))

    g = gevent.spawn(later)
    fake.wait_for_calls(2, timeout=10)
    assert g.get(timeout=10) == "you said: ping pong"
    assert fake.call_count == 2
    with pytest.raises(TimeoutError):
        fake.wait_for_calls(3, timeout=0.05)


def test_exhausted_script_raises_in_the_caller() -> None:
    fake = FakeLLM([])
    with pytest.raises(RuntimeError, match="no scripted response"):
        list(fake.chat(llm.ChatContext()))


def test_plugin_error_is_reraised_after_earlier_chunks() -> None:
    err = ConnectionError("server went away")
    fake = FakeLLM([FakeResponse(text="partial answer", error=err)])
    stream = fake.chat(llm.ChatContext().append(role="user", text="hi"))
    got: list[str] = []
    with pytest.raises(ConnectionError) as info:
        for chunk in stream:
            got.append(chunk.choices[0].delta.content or "")
    assert info.value is err
    assert got == ["partial ", "answer"]
    assert list(stream) == []  # finished
    assert stream.metrics is not None
    assert stream.metrics.error == "ConnectionError: server went away"


def test_close_from_another_greenlet_ends_iteration() -> None:
    fake = FakeLLM(["never arrives"], ttft=60)
    stream = fake.chat(llm.ChatContext().append(role="user", text="hi"))
    received: list[llm.ChatChunk] = []
    consumer = gevent.spawn(lambda: received.extend(stream))
    fake.wait_for_calls(1, timeout=10)  # the request is in flight
    stream.close()
    consumer.join(timeout=10)
    assert consumer.successful() and received == []
    assert stream.metrics is not None and stream.metrics.cancelled
    stream.close()  # idempotent


def test_timeout_bounds_the_wait_for_chunks() -> None:
    fake = FakeLLM(["slow"], ttft=60)
    stream = fake.chat(llm.ChatContext(), timeout=0.1)
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        next(stream)
    assert time.monotonic() - t0 < 5
    assert stream.metrics is not None and stream.metrics.cancelled  # the request was stopped
    with pytest.raises(StopIteration):
        next(stream)


# -- writing a plugin -----------------------------------------------------------------------


class Countdown(llm.LLM):
    """A minimal plugin: counts down, reporting which job its generator ran for."""

    def __init__(self) -> None:
        super().__init__()
        self.job_ids: list[str | None] = []
        self.unwound = gevent.event.Event()
        self.block = gevent.event.Event()

    def _chat(
        self,
        chat_ctx: llm.ChatContext,
        fnc_ctx: llm.FunctionContext | None,
        temperature: float | None,
    ) -> Iterator[llm.ChatChunk]:
        self.job_ids.append(runtime.current_job_id())
        try:
            for n in ("3", "2", "1"):
                yield llm.ChatChunk([llm.Choice(llm.ChoiceDelta(content=n))], request_id="cd")
            if chat_ctx.messages and chat_ctx.messages[-1].content == "hang":
                self.block.wait()
        finally:
            self.unwound.set()


def test_custom_plugin_runs_in_the_callers_job() -> None:
    plugin = Countdown()

    def job() -> str:
        return _text(plugin.chat(llm.ChatContext()))

    g = gevent.spawn(job)
    runtime.bind_job_id(g, "job-7")
    assert g.get(timeout=10) == "321"
    assert plugin.job_ids == ["job-7"]


def test_breaking_out_and_closing_unwinds_the_generator() -> None:
    plugin = Countdown()
    with plugin.chat(llm.ChatContext().append(role="user", text="hang"), timeout=10) as stream:
        assert next(stream).choices[0].delta.content == "3"
    assert plugin.unwound.is_set()


def test_non_chunks_and_missing_chat_are_reported() -> None:
    class Wrong(llm.LLM):
        def _chat(
            self,
            chat_ctx: llm.ChatContext,
            fnc_ctx: llm.FunctionContext | None,
            temperature: float | None,
        ) -> Iterator[llm.ChatChunk]:
            yield "text"  # type: ignore[misc]

    with pytest.raises(TypeError, match="must yield ChatChunk"):
        list(Wrong().chat(llm.ChatContext()))
    with pytest.raises(NotImplementedError):
        list(llm.LLM().chat(llm.ChatContext()))
