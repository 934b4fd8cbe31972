"""The conversation given to an LLM: messages with roles, tool calls and tool results."""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from loguru import logger

from .arguments import ToolCallError
from .function_context import CalledFunction, FunctionCallInfo
from .images import ChatImage, serialize_image
from .json_repair import is_json_object, parse_tool_arguments

__all__ = [
    "ChatContext",
    "ChatMessage",
    "ChatRole",
    "result_to_text",
    "to_openai_messages",
    "tool_call_arguments_json",
]

ChatRole = Literal["system", "user", "assistant", "tool"]
_ROLES = frozenset(get_args(ChatRole))


@dataclass
class ChatMessage:
    """One message. Assistant messages may carry ``tool_calls``; tool messages answer one call
    through ``tool_call_id`` (and keep the function's exception, if any, in
    ``tool_exception``).

    ``content`` is a str, or a list of parts: str and ``ChatImage`` (images are sent to
    vision models with user messages), or None.
    """

    role: ChatRole
    # typed Any because code written for text-only contexts reads it as a str; use ``text``
    content: Any = ""
    tool_calls: list[FunctionCallInfo] | None = None
    tool_call_id: str | None = None
    tool_exception: BaseException | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.role not in _ROLES:
            raise ValueError(f"unknown chat role {self.role!r} (expected one of {sorted(_ROLES)})")
        content = self.content
        if isinstance(content, (list, tuple)):
            for part in content:
                if not isinstance(part, (str, ChatImage)):
                    raise TypeError(
                        "ChatMessage content parts must be str or llm.ChatImage, got "
                        f"{type(part).__name__}"
                    )
            self.content = list(content)
        elif content is not None and not isinstance(content, str):
            raise TypeError(
                "ChatMessage content must be a str, a list of str and llm.ChatImage, or None; "
                f"got {type(content).__name__}"
            )

    @property
    def text(self) -> str:
        """The text of the message: ``content`` itself, or its str parts joined by newlines."""
        if isinstance(self.content, list):
            return "\n".join(p for p in self.content if isinstance(p, str))
        return self.content or ""

    @property
    def images(self) -> list[ChatImage]:
        """The ``ChatImage`` parts of ``content``."""
        if isinstance(self.content, list):
            return [p for p in self.content if isinstance(p, ChatImage)]
        return []

    @staticmethod
    def create(
        *, text: str = "", role: ChatRole = "system", images: Sequence[ChatImage] = ()
    ) -> ChatMessage:
        """A message with ``text`` and, if given, ``images`` after it (``content`` is then a
        list of parts)."""
        if images:
            parts: list[Any] = [text] if text else []
            return ChatMessage(role=role, content=[*parts, *images])
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
        content = list(self.content) if isinstance(self.content, list) else self.content
        return dataclasses.replace(self, tool_calls=calls, content=content)


def result_to_text(result: Any) -> str:
    """A tool's return value as the text of its ``tool`` message.

    ``None`` gives ``""``, a string is kept as is, anything else becomes JSON (objects JSON cannot
    encode through their ``str()``), or its ``str()`` when even that fails.
    """
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

    def append(
        self, *, text: str = "", role: ChatRole = "system", images: Sequence[ChatImage] = ()
    ) -> ChatContext:
        """Add a message (see ``ChatMessage.create``) and return this context."""
        self.messages.append(ChatMessage.create(text=text, role=role, images=images))
        return self

    def copy(self) -> ChatContext:
        """An independent copy: changing either context's list or messages leaves the other."""
        return ChatContext([m.copy() for m in self.messages])

    def to_openai(self) -> list[dict[str, Any]]:
        """The ``messages`` of an OpenAI chat-completions request for this context."""
        return to_openai_messages(self)

    def __repr__(self) -> str:
        return f"ChatContext(messages={self.messages!r})"


def tool_call_arguments_json(call: FunctionCallInfo) -> str:
    """The ``arguments`` to send for ``call``: always a valid JSON object text.

    Resolved calls already hold valid JSON (see ``FunctionCallInfo``); a call that was never
    resolved is repaired here, and hopeless text becomes ``"{}"``: strict servers reject a
    whole request over one invalid ``arguments`` string.
    """
    raw = call.raw_arguments
    if isinstance(raw, str) and is_json_object(raw):
        return raw
    try:
        data, _ = parse_tool_arguments(raw)
    except ValueError:
        return "{}"
    return json.dumps(data, ensure_ascii=False)


_warned_dropped_images = False


def _openai_content(msg: ChatMessage) -> Any:
    global _warned_dropped_images
    content = msg.content
    if not isinstance(content, list):
        return content or ""
    images = [p for p in content if isinstance(p, ChatImage)]
    if not images:
        return msg.text
    if msg.role != "user":
        # OpenAI takes images in user messages only; the text still goes
        if not _warned_dropped_images:
            _warned_dropped_images = True
            logger.warning("images in {} messages are not sent (user messages only)", msg.role)
        return msg.text
    parts: list[dict[str, Any]] = []
    for part in content:
        if isinstance(part, str):
            if part:
                parts.append({"type": "text", "text": part})
        else:
            parts.append({
                "type": "image_url",
                "image_url": {"url": serialize_image(part), "detail": part.inference_detail},
            })
    return parts


def to_openai_messages(chat_ctx: ChatContext) -> list[dict[str, Any]]:
    """The ``messages`` of an OpenAI chat-completions request for ``chat_ctx``.

    Images in user messages become ``image_url`` parts (data URLs for bytes and frames); tool
    calls always carry valid JSON ``arguments`` (see ``tool_call_arguments_json``).
    """
    out: list[dict[str, Any]] = []
    for msg in chat_ctx.messages:
        item: dict[str, Any] = {"role": msg.role}
        if msg.role == "assistant" and msg.tool_calls:
            # OpenAI wants null, not "", beside tool calls
            item["content"] = msg.text or None
            item["tool_calls"] = [
                {
                    "id": call.tool_call_id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": tool_call_arguments_json(call)},
                }
                for call in msg.tool_calls
            ]
        else:
            item["content"] = _openai_content(msg)
        if msg.role == "tool":
            item["tool_call_id"] = msg.tool_call_id or ""
        out.append(item)
    return out
