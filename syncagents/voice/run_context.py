"""``RunContext``: what a function tool gets to know about the call it serves."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .. import llm

if TYPE_CHECKING:
    from ..voice_assistant import SpeechHandle
    from .session import AgentSession

__all__ = ["RunContext"]

Userdata_T = TypeVar("Userdata_T")


class RunContext(Generic[Userdata_T]):
    """Given to a function tool through its parameter annotated ``RunContext`` (any name):
    the ``session``, its ``userdata``, the ``speech_handle`` of the reply that called the tool
    (``speech_handle.interrupted`` tells whether the user cut in meanwhile) and the
    ``function_call`` itself. Created by the session for each call."""

    def __init__(
        self,
        *,
        session: AgentSession,
        speech_handle: SpeechHandle,
        function_call: llm.FunctionCallInfo,
    ) -> None:
        self._session = session
        self._speech_handle = speech_handle
        self._function_call = function_call

    @property
    def session(self) -> AgentSession:
        """The session running the tool."""
        return self._session

    @property
    def speech_handle(self) -> SpeechHandle:
        """The reply whose LLM asked for this call."""
        return self._speech_handle

    @property
    def function_call(self) -> llm.FunctionCallInfo:
        """The call: ``name``, ``arguments`` (checked), ``tool_call_id``."""
        return self._function_call

    @property
    def userdata(self) -> Userdata_T:
        """The session's ``userdata``."""
        value: Any = self._session.userdata
        return value  # type: ignore[no-any-return]

    def disallow_interruptions(self) -> None:
        """From now on the user cannot interrupt the reply this tool belongs to (for a tool
        whose work must not be cut off, e.g. a payment)."""
        self._speech_handle.allow_interruptions = False

    def __repr__(self) -> str:
        return f"RunContext(function={self._function_call.name!r}, speech={self._speech_handle.id})"
