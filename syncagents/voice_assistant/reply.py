"""The text of a reply to a user turn: the LLM's answer, with rounds of tool calls.

When an LLM round ends with tool calls, the reply first waits until its turn is validated
(tools have side effects: a preemptive reply that may still be discarded never runs them),
then emits ``function_calls_collected``, runs the calls concurrently in greenlets spawned
from here (so they inherit the job), appends the assistant's tool-call message and the
results to the assistant's chat context, emits ``function_calls_finished`` and asks the LLM
again for the follow-up answer. At most ``MAX_TOOL_ROUNDS`` rounds run; tool calls beyond
them are logged and dropped.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from loguru import logger

from .. import llm
from .played_text import count_words

if TYPE_CHECKING:
    from .assistant import VoiceAssistant
    from .speech_handle import SpeechHandle

__all__ = ["MAX_TOOL_ROUNDS", "reply_text"]

MAX_TOOL_ROUNDS = 3


def reply_text(
    assistant: VoiceAssistant, handle: SpeechHandle, chat_ctx: llm.ChatContext
) -> Iterator[str]:
    """The text of the reply ``handle``, as it streams from the LLM (a generator).

    Asks the assistant's LLM about ``chat_ctx`` (nothing is yielded when ``before_llm_cb``
    skipped the request). When a round ends with tool calls it waits for the turn to be
    validated, runs them, adds them and their results to the chat context and yields the
    follow-up answer; at most ``MAX_TOOL_ROUNDS`` rounds.
    """
    stream: Any = assistant._start_llm(chat_ctx, handle)
    if stream is None:
        return
    timings = handle._timings
    rounds = 0
    separator = ""  # between the text of two rounds, so sentences do not run together
    while True:
        round_parts: list[str] = []
        try:
            for chunk in stream:
                for choice in chunk.choices:
                    content = choice.delta.content
                    if content:
                        if timings is not None and timings.llm_first_token_at < 0:
                            timings.llm_first_token_at = assistant.clock.now()
                        if separator and not content[0].isspace():
                            yield separator
                        separator = ""
                        round_parts.append(content)
                        yield content
        finally:
            stream.close()
        metrics = getattr(stream, "metrics", None)
        if timings is not None and timings.llm_ttft < 0 and metrics is not None:
            timings.llm_ttft = metrics.ttft
        calls: list[llm.FunctionCallInfo] = list(stream.function_calls)
        if not calls:
            return
        if rounds >= MAX_TOOL_ROUNDS:
            logger.warning(
                "reply {}: the LLM still asks for tools after {} rounds; ignoring {}",
                handle.id,
                rounds,
                ", ".join(c.name for c in calls),
            )
            return
        handle._validated.wait()
        if round_parts:
            # let the TTS speak what it holds back ("Let me check.") while the tools run
            if handle._synthesis is not None:
                handle._synthesis.flush()
            if not round_parts[-1][-1].isspace():
                separator = " "
        rounds += 1
        if timings is not None:
            timings.function_rounds = rounds
        assistant._emit("function_calls_collected", calls)
        follow_up = assistant._run_tool_calls(handle, stream, calls, "".join(round_parts))
        # everything said so far is now in the context with the tool calls
        handle._tool_words = count_words(handle.text)
        if follow_up is None:
            return
        stream = follow_up
