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

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from loguru import logger

from .. import llm
from .played_text import count_words

if TYPE_CHECKING:
    from .speech_handle import SpeechHandle

__all__ = ["MAX_TOOL_ROUNDS", "ReplyHost", "reply_text"]

MAX_TOOL_ROUNDS = 3


@dataclass(frozen=True)
class ReplyHost:
    """What a reply asks of its assistant, handed over explicitly (the assistant's bound
    methods, so a subclass's overrides apply) rather than reached through its privates."""

    start_llm: Callable[[llm.ChatContext, SpeechHandle], Any]
    """The LLM stream for a reply's context, or None when ``before_llm_cb`` skipped it."""
    run_tool_calls: Callable[[SpeechHandle, Any, list[llm.FunctionCallInfo], str], Any]
    """Run a round's tool calls, record them in the chat context; the follow-up LLM stream
    (or None)."""
    tools_collected: Callable[[list[llm.FunctionCallInfo]], None]
    """Report a round's tool calls (``function_calls_collected``) before they run."""
    now: Callable[[], float]
    """The assistant's clock, for the turn timings."""


def reply_text(host: ReplyHost, handle: SpeechHandle, chat_ctx: llm.ChatContext) -> Iterator[str]:
    """The text of the reply ``handle``, as it streams from the LLM (a generator).

    Asks the assistant's LLM (through ``host``) about ``chat_ctx`` (nothing is yielded when
    ``before_llm_cb`` skipped the request). When a round ends with tool calls it waits for
    the turn to be validated, runs them, adds them and their results to the chat context and
    yields the follow-up answer; at most ``MAX_TOOL_ROUNDS`` rounds.
    """
    stream: Any = host.start_llm(chat_ctx, handle)
    if stream is None:
        return
    timings = handle.timings
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
                            timings.llm_first_token_at = host.now()
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
        handle.wait_validated()
        if round_parts:
            # let the TTS speak what it holds back ("Let me check.") while the tools run
            handle.flush_synthesis()
            if not round_parts[-1][-1].isspace():
                separator = " "
        rounds += 1
        if timings is not None:
            timings.function_rounds = rounds
        host.tools_collected(calls)
        follow_up = host.run_tool_calls(handle, stream, calls, "".join(round_parts))
        # everything said so far is now in the context with the tool calls
        handle.set_tool_words(count_words(handle.text))
        if follow_up is None:
            return
        stream = follow_up
