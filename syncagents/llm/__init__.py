"""LLM interfaces: chat contexts, AI functions (tools), and the blocking ``LLM``/``LLMStream``.

Plugins subclass ``LLM`` and implement the generator ``_chat``; see ``llm.py``.
"""

from __future__ import annotations

from .arguments import FunctionArgInfo, ToolCallError, TypeInfo
from .chat_context import ChatContext, ChatMessage, ChatRole, result_to_text, to_openai_messages
from .function_context import (
    CalledFunction,
    FunctionCallInfo,
    FunctionContext,
    FunctionInfo,
    ai_callable,
    build_function_info,
    build_tool_schemas,
    execute_function_calls,
)
from .llm import (
    LLM,
    ChatChunk,
    Choice,
    ChoiceDelta,
    CompletionUsage,
    LLMMetrics,
    LLMStream,
)

__all__ = [
    "LLM",
    "CalledFunction",
    "ChatChunk",
    "ChatContext",
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
    "ToolCallError",
    "TypeInfo",
    "ai_callable",
    "build_function_info",
    "build_tool_schemas",
    "execute_function_calls",
    "result_to_text",
    "to_openai_messages",
]
