"""The conversation given to an LLM: messages with roles, tool calls and tool results."""

from __future__ import annotations

import copy
import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from .arguments import ToolCallError
from .function_context import CalledFunction, FunctionCallInfo

__all__ = ["ChatContext", "ChatMessage", "ChatRole", "result_to_text", "to_openai_messages"]

ChatRole = Literal["system", "user", "assistant", "tool"]
_ROLES = frozenset(get_args(ChatRole))


@dataclass
class ChatMessage:
    """One message. Assistant messages may carry ``tool_calls``; tool messages answer one call
    through ``tool_call_id`` (and keep the function's exception, if any, in
    ``tool_exception``)."""

    role: ChatRole
    content: str | None = ""
    tool_calls: list[FunctionCallInfo] | None = None
    tool_call_id: str | None = None
    tool_exception: BaseException | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.role not in _ROLES:
            raise ValueError(f"unknown chat role {self.role!r} (expected one of {sorted(_ROLES)})")

    @staticmethod
    def create(*, text: str = "", role: ChatRole = "system") -> ChatMessage:
        return ChatMessage(role=role, content=text)

    @staticmethod
    def create_tool_calls(calls: list[FunctionCallInfo], text: str = "") -> ChatMessage:
        """The assistant message that made ``calls`` (it must precede their results)."""
        return ChatMessage(role="assistant", content=text, tool_calls=list(calls))

    @staticmethod
    def create_tool_from_called_function(called: CalledFunction) -> ChatMessage:
        """The tool result for the model: the result as text, or ``error: ...``."""
        exc = called.exception
        if exc is not None:
            # argument errors are already phrased for the model; others say what was raised
            detail = str(exc) if isinstance(exc, ToolCallError) else f"{type(exc).__name__}: {exc}"
            content = f"error: {detail}"
        else:
            content = result_to_text(called.result)
        return ChatMessage(
            role="tool",
            content=content,
            tool_call_id=called.call_info.tool_call_id,
            tool_exception=exc,
        )

    def copy(self) -> ChatMessage:
        """A copy whose tool-call list and arguments can change without touching this one."""
        calls = None
        if self.tool_calls is not None:
            calls = [
                dataclasses.replace(c, arguments=copy.deepcopy(c.arguments))
                for c in self.tool_calls
            ]
        return dataclasses.replace(self, tool_calls=calls)


def result_to_text(result: Any) -> str:
    if result is None:
        return ""
    if isinstance(result, str):
        return result
    try:
        return json.dumps(result, default=str)
    except (TypeError, ValueError):
        return str(result)


class ChatContext:
    """An ordered list of messages; ``append`` returns the context for chaining."""

    def __init__(self, messages: list[ChatMessage] | None = None) -> None:
        self.messages: list[ChatMessage] = list(messages) if messages else []

    def append(self, *, text: str = "", role: ChatRole = "system") -> ChatContext:
        self.messages.append(ChatMessage.create(text=text, role=role))
        return self

    def copy(self) -> ChatContext:
        """An independent copy: changing either context's list or messages leaves the other."""
        return ChatContext([m.copy() for m in self.messages])

    def to_openai(self) -> list[dict[str, Any]]:
        return to_openai_messages(self)

    def __repr__(self) -> str:
        return f"ChatContext(messages={self.messages!r})"


def to_openai_messages(chat_ctx: ChatContext) -> list[dict[str, Any]]:
    """The ``messages`` of an OpenAI chat-completions request for ``chat_ctx``."""
    out: list[dict[str, Any]] = []
    for msg in chat_ctx.messages:
        item: dict[str, Any] = {"role": msg.role}
        if msg.role == "assistant" and msg.tool_calls:
            item["content"] = msg.content or None  # OpenAI wants null, not "", beside tool calls
            item["tool_calls"] = [
                {
                    "id": call.tool_call_id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.raw_arguments or "{}"},
                }
                for call in msg.tool_calls
            ]
        else:
            item["content"] = msg.content or ""
        if msg.role == "tool":
            item["tool_call_id"] = msg.tool_call_id or ""
        out.append(item)
    return out
