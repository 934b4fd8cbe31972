"""LLM interfaces: chat contexts, AI functions (tools), and the blocking ``LLM``/``LLMStream``.

Plugins subclass ``LLM`` and implement the generator ``_chat``; see ``llm.py``.
"""

from __future__ import annotations

from .arguments import FunctionArgInfo, ToolCallError, TypeInfo
from .chat_context import (
    ChatContext,
    ChatMessage,
    ChatRole,
    result_to_text,
    to_openai_messages,
    tool_call_arguments_json,
)
from .docstring import ParsedDocstring, parse_docstring
from .function_context import (
    CalledFunction,
    FunctionCallInfo,
    FunctionContext,
    FunctionInfo,
    ai_callable,
    build_function_info,
    build_raw_function_info,
    build_tool_schemas,
    execute_function_calls,
)
from .images import ChatImage, serialize_image
from .json_repair import parse_tool_arguments, repair_json
from .llm import (
    LLM,
    ChatChunk,
    Choice,
    ChoiceDelta,
    CompletionUsage,
    LLMMetrics,
    LLMStream,
    ToolChoice,
    normalize_tool_choice,
)
from .schema import to_strict_json_schema

__all__ = [
    "LLM",
    "CalledFunction",
    "ChatChunk",
    "ChatContext",
    "ChatImage",
    "ChatMessage",
    "ChatRole",
    "Choice",
    "ChoiceDelta",
    "CompletionUsage",
    "FunctionArgInfo",
    "FunctionCallInfo",
    "FunctionContext",
    "FunctionInfo",
    "LLMMetrics",
    "LLMStream",
    "ParsedDocstring",
    "ToolCallError",
    "ToolChoice",
    "TypeInfo",
    "ai_callable",
    "build_function_info",
    "build_raw_function_info",
    "build_tool_schemas",
    "execute_function_calls",
    "normalize_tool_choice",
    "parse_docstring",
    "parse_tool_arguments",
    "repair_json",
    "result_to_text",
    "serialize_image",
    "to_openai_messages",
    "to_strict_json_schema",
    "tool_call_arguments_json",
]
