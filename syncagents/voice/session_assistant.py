"""``SessionAssistant``: the ``VoiceAssistant`` an ``AgentSession`` runs on.

The pipeline is the assistant's own (VAD, STT, endpointing, preemptive replies, the speech
queue, interruptions, what-was-heard bookkeeping); this subclass only lets the session's
current ``Agent`` decide, through the assistant's hooks:

* the prompt and tools of every LLM request (``_start_llm``): the agent's instructions go
  first, its tools are offered; ``generate_reply`` speeches add their instructions last;
* ``on_user_turn_completed``, run once the turn is final and before the request (an agent
  that overrides it gives up the preemptive start of the LLM request for that turn);
* a round of tool calls (``_run_tool_calls``): each tool runs in a greenlet of the
  assistant with a ``RunContext``. Those greenlets are not children of the reply: when the
  user interrupts during a tool call, the tools still finish (a half-done side effect is
  worse than a late one) and their results go into the conversation, but nothing more is said
  and a handoff they asked for does not happen — as in livekit-agents. Otherwise a tool that
  returned a value gets a follow-up answer, and a returned ``Agent`` takes over once the
  speech that made the call has played out.

What the agent says and hears is reported to the session, which keeps the history and emits
its events.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

import gevent
from loguru import logger

from .. import llm
from .. import stt as stt_mod
from ..voice_assistant import SpeechHandle, VoiceAssistant
from ..voice_assistant.reply import reply_text
from .agent import Agent
from .events import ErrorEvent, FunctionToolsExecutedEvent, UserInputTranscribedEvent
from .run_context import RunContext
from .tools import StopResponse, ToolError, tool_binding

if TYPE_CHECKING:
    from .session import AgentSession

__all__ = ["SessionAssistant"]

# the result a handoff gets when the user interrupted the speech that asked for it
HANDOFF_INTERRUPTED = "the agent handoff was interrupted and did not happen"


def overrides_turn_hook(agent: Agent) -> bool:
    """Whether ``agent`` has its own ``on_user_turn_completed`` (else there is nothing to
    wait for before starting a reply's LLM request)."""
    return type(agent).on_user_turn_completed is not Agent.on_user_turn_completed


class SessionHost(Protocol):
    """What a ``SessionAssistant`` tells the ``AgentSession`` running it, and asks it."""

    @property
    def session(self) -> AgentSession:
        """The session (what tools get in their ``RunContext``)."""
        ...

    @property
    def agent(self) -> Agent | None:
        """The agent in charge now."""
        ...

    def item_added(self, msg: llm.ChatMessage) -> None:
        """``msg`` joined the conversation: into the history, and announced."""

    def refresh_agent_state(self) -> None:
        """Something the agent state depends on changed."""

    def emit(self, event: str, payload: Any) -> None:
        """Emit a session event."""

    def assistant_closed(self) -> None:
        """The assistant closed (e.g. the room went away): the session ends with it."""

    def switch_agent(self, agent: Agent) -> None:
        """Hand the conversation over to ``agent``."""


@dataclass(frozen=True)
class _ToolOutcome:
    call: llm.FunctionCallInfo
    result: Any = None
    exception: BaseException | None = None
    agent: Agent | None = None  # the agent the tool hands over to
    reply: bool = True  # the model should answer this result

    def called(self) -> llm.CalledFunction:
        return llm.CalledFunction(call_info=self.call, result=self.result,
                                  exception=self.exception)


class SessionAssistant(VoiceAssistant):
    """A ``VoiceAssistant`` driven by an ``AgentSession`` (see the module doc)."""

    def __init__(self, host: SessionHost, **options: Any) -> None:
        super().__init__(**options)
        self._host = host
        # reply id -> the agent whose on_user_turn_completed runs for that turn (None: none);
        # decided once per reply, by whichever of the LLM request and the commit comes first
        self._turn_hooks: dict[str, Agent | None] = {}
        self._hooks_run: set[str] = set()  # replies whose on_user_turn_completed ran
        # generate_reply speeches: id -> their extra instructions
        self._generated: dict[str, str | None] = {}
        self._tools_running = 0  # rounds of tool calls under way

    # -- what the session reads ----------------------------------------------------------

    @property
    def user_turn_pending(self) -> bool:
        """As ``VoiceAssistant.user_turn_pending``, also counting tools that run and
        ``generate_reply`` speeches not yet playing (the console waits for those too)."""
        if super().user_turn_pending or self._tools_running:
            return True
        return any(
            h.id in self._generated and not (h.started or h.done) for h in list(self._handles)
        )

    @property
    def tools_running(self) -> bool:
        """A round of tool calls is under way."""
        return self._tools_running > 0

    def preparing_reply(self) -> bool:
        """A reply (to a user turn, or ``generate_reply``) may play and has not finished."""
        return any(
            (h.is_reply or h.id in self._generated)
            and h.validated
            and not (h.done or h.cancelled)
            for h in list(self._handles)
        )

    # -- what the session does ----------------------------------------------------------

    def spawn(self, fn: Any, *args: Any) -> gevent.Greenlet:
        """Run ``fn(*args)`` in a greenlet of the assistant (killed when it closes)."""
        return self._spawn(fn, *args)

    def use_agent_context(self, chat_ctx: llm.ChatContext, fnc_ctx: Any) -> None:
        """From now on the conversation is ``chat_ctx`` (the agent's own, appended to in
        place) and the tools ``fnc_ctx``: a handoff."""
        self._chat_ctx = chat_ctx
        self._fnc_ctx = fnc_ctx

    def interrupt_speeches(self, force: bool) -> list[SpeechHandle]:
        """Interrupt every speech queued or playing that allows it (all of them with
        ``force``); returns those interrupted. A preemptive reply whose turn is not over yet
        is left alone: it is the turn-taking's business."""
        interrupted = []
        for handle in list(self._handles):
            if handle.done or not handle.validated:
                continue
            if handle.allow_interruptions or force:
                self._interrupt_speech(handle)
                interrupted.append(handle)
        return interrupted

    # -- speeches ------------------------------------------------------------------------

    def generate(self, instructions: str | None, allow_interruptions: bool) -> SpeechHandle:
        """Queue a reply made by the LLM from the conversation as it is when the request
        starts (now), with ``instructions`` added for this reply only."""
        if self._closed:
            raise RuntimeError("AgentSession is closed")
        handle = SpeechHandle(
            self._interrupt_speech,
            allow_interruptions=allow_interruptions,
            add_to_chat_ctx=True,
            is_reply=False,
        )
        handle.mark_validated()
        self._generated[handle.id] = instructions
        # reply_text passes the context on to _start_llm, which reads the live one for these
        handle.set_synthesis(self._synthesize(reply_text(self._reply_host, handle, self._chat_ctx)))
        self._handles.add(handle)
        self._queue.send_nowait(handle)
        return handle

    def _forget(self, handle: SpeechHandle) -> None:
        hook_agent = self._turn_hooks.pop(handle.id, None)
        self._generated.pop(handle.id, None)
        ran = handle.id in self._hooks_run
        self._hooks_run.discard(handle.id)
        msg = handle.user_message
        # a reply that ended before its hook could run (the user went on first): the turn
        # stays in the conversation, as with any agent, so the history gets it too
        if (
            hook_agent is not None
            and not ran
            and isinstance(msg, llm.ChatMessage)
            and any(m is msg for m in self._chat_ctx.messages)
        ):
            self._host.item_added(msg)

    def _finish(self, handle: SpeechHandle) -> None:
        if handle.done:
            return
        synthesis = handle.synthesis
        error = synthesis.error if synthesis is not None else None
        super()._finish(handle)
        self._forget(handle)
        if error is not None:
            self._host.emit("error", ErrorEvent(error=error, source=self._llm))
        self._host.refresh_agent_state()

    def _drop(self, handle: SpeechHandle) -> None:
        super()._drop(handle)
        if handle.done:
            self._forget(handle)
        self._host.refresh_agent_state()

    def close(self) -> None:
        """Close the pipeline; the session closes with it (e.g. when the room goes away)."""
        was_closed = self._closed
        super().close()
        if not was_closed:
            self._host.assistant_closed()

    # -- the user's side -----------------------------------------------------------------

    def _on_stt_event(self, ev: stt_mod.SpeechEvent) -> None:
        final = ev.type is stt_mod.SpeechEventType.FINAL_TRANSCRIPT
        if final or ev.type is stt_mod.SpeechEventType.INTERIM_TRANSCRIPT:
            text = ev.text.strip()
            if text:
                alt = ev.alternatives[0] if ev.alternatives else None
                # before the assistant acts on it: the transcript precedes the turn it makes
                self._host.emit(
                    "user_input_transcribed",
                    UserInputTranscribedEvent(
                        transcript=text,
                        is_final=final,
                        language=(alt.language or None) if alt is not None else None,
                    ),
                )
        super()._on_stt_event(ev)

    def _turn_hook_agent(self, handle: SpeechHandle) -> Agent | None:
        if handle.id not in self._turn_hooks:
            agent = self._host.agent
            hooked = agent is not None and overrides_turn_hook(agent)
            self._turn_hooks[handle.id] = agent if hooked else None
        return self._turn_hooks[handle.id]

    def _commit_user_turn(self, text: str, handle: SpeechHandle) -> None:
        hook_agent = self._turn_hook_agent(handle)
        super()._commit_user_turn(text, handle)
        msg = handle.user_message
        if hook_agent is None and isinstance(msg, llm.ChatMessage):
            self._host.item_added(msg)
        # else the hook decides, in the reply's greenlet, whether the turn is kept
        self._host.refresh_agent_state()

    def _run_turn_hook(self, agent: Agent, handle: SpeechHandle) -> llm.ChatContext | None:
        """``on_user_turn_completed``: the context of the reply, or None to stay silent."""
        msg = handle.user_message
        if not isinstance(msg, llm.ChatMessage):
            return None
        self._hooks_run.add(handle.id)
        turn_ctx = llm.ChatContext([m.copy() for m in self._chat_ctx.messages if m is not msg])
        try:
            agent.on_user_turn_completed(turn_ctx, msg)
        except StopResponse:
            logger.debug("{}: on_user_turn_completed: no reply to {!r}", agent.id, msg.content)
            self._remove_message(msg)
            return None
        except Exception:
            logger.opt(exception=True).error(
                "{}.on_user_turn_completed failed: the turn stays unanswered", agent.id
            )
            self._remove_message(msg)
            return None
        self._host.item_added(msg)
        turn_ctx.messages.append(msg.copy())
        return turn_ctx

    def _remove_message(self, msg: llm.ChatMessage) -> None:
        messages = self._chat_ctx.messages
        for i in range(len(messages) - 1, -1, -1):
            if messages[i] is msg:
                del messages[i]
                return

    # -- LLM requests --------------------------------------------------------------------

    def _request_ctx(
        self, agent: Agent, chat_ctx: llm.ChatContext, extra: str | None
    ) -> llm.ChatContext:
        messages: list[llm.ChatMessage] = []
        if agent.instructions:
            messages.append(llm.ChatMessage(role="system", content=agent.instructions))
        messages.extend(chat_ctx.messages)
        if extra:
            # last, as livekit-agents does: the model weighs it for this very answer
            messages.append(llm.ChatMessage(role="system", content=extra))
        return llm.ChatContext(messages)

    def _start_llm(
        self, chat_ctx: llm.ChatContext, handle: SpeechHandle | None = None
    ) -> llm.LLMStream | None:
        extra: str | None = None
        if handle is not None and handle.id in self._generated:
            extra = self._generated[handle.id]
            chat_ctx = self._chat_ctx  # the conversation as it is now (LLMStream copies it)
        elif handle is not None and handle.is_reply:
            hook_agent = self._turn_hook_agent(handle)
            if hook_agent is not None:
                handle.wait_validated()  # the turn is final (or the reply is discarded)
                turn_ctx = self._run_turn_hook(hook_agent, handle)
                if turn_ctx is None:
                    return None
                chat_ctx = turn_ctx
        agent = self._host.agent
        if agent is None:  # not started yet: nothing to answer with
            return None
        request = self._request_ctx(agent, chat_ctx, extra)
        return self._llm.chat(chat_ctx=request, fnc_ctx=agent.fnc_ctx)

    # -- tool calls ----------------------------------------------------------------------

    def _run_tool_calls(
        self,
        handle: SpeechHandle,
        stream: llm.LLMStream,
        calls: list[llm.FunctionCallInfo],
        text: str,
    ) -> llm.LLMStream | None:
        self._tools_running += 1
        self._host.refresh_agent_state()
        # spawned by the assistant, not as children of this reply greenlet: see the module doc
        runs = [self._spawn(self._call_tool, handle, call) for call in calls]
        try:
            gevent.joinall(runs)
        except BaseException:
            # the reply was interrupted: the tools finish on their own (when the session
            # closes they are killed with everything else)
            if not self._closed:
                self._spawn(self._finish_interrupted_tools, calls, runs)
            raise
        try:
            outcomes = [self._outcome(call, g) for call, g in zip(calls, runs)]
            return self._after_tools(handle, calls, outcomes, text)
        finally:
            self._tools_running -= 1
            self._host.refresh_agent_state()

    def _call_tool(self, handle: SpeechHandle, call: llm.FunctionCallInfo) -> _ToolOutcome:
        if call.error is not None or call.function_info is None:
            error = call.error or llm.ToolCallError(f"function {call.name!r} was not resolved")
            logger.warning("tool call {} not run: {}", call.name, error)
            return _ToolOutcome(call, exception=error)
        binding = tool_binding(call.function_info)
        try:
            if binding is None:  # a plain llm.ai_callable: no RunContext to give
                result = call.function_info.callable(**call.arguments)
            else:
                context: RunContext[Any] = RunContext(
                    session=self._host.session, speech_handle=handle, function_call=call
                )
                result = binding.invoke(context, call.arguments)
        except StopResponse:
            return _ToolOutcome(call, reply=False)
        except Exception as e:
            if not isinstance(e, ToolError):
                logger.opt(exception=e).warning("tool {} raised", call.name)
            return _ToolOutcome(call, exception=e)
        agent: Agent | None = None
        if isinstance(result, Agent):
            agent, result = result, None
        elif isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], Agent):
            agent, result = result
        # as in livekit-agents: a tool with nothing to say (None, a bare handoff) expects no
        # answer from the model
        return _ToolOutcome(call, result=result, agent=agent, reply=result is not None)

    @staticmethod
    def _outcome(call: llm.FunctionCallInfo, greenlet: gevent.Greenlet) -> _ToolOutcome:
        value = greenlet.value if greenlet.dead else None
        if isinstance(value, _ToolOutcome):
            return value
        error = greenlet.exception or RuntimeError("the call was cancelled")
        return _ToolOutcome(call, exception=error, reply=False)

    def _record_tool_round(
        self, calls: list[llm.FunctionCallInfo], outputs: list[llm.ChatMessage], text: str
    ) -> None:
        """The calls and their results into the agent's conversation and the history."""
        call_msg = llm.ChatMessage.create_tool_calls(calls, text=text)
        self._chat_ctx.messages.append(call_msg)
        self._chat_ctx.messages.extend(outputs)
        for msg in (call_msg, *outputs):
            self._host.item_added(msg)

    def _after_tools(
        self,
        handle: SpeechHandle,
        calls: list[llm.FunctionCallInfo],
        outcomes: list[_ToolOutcome],
        text: str,
    ) -> llm.LLMStream | None:
        handoffs = [o.agent for o in outcomes if o.agent is not None]
        if len(handoffs) > 1:
            # which one would be arbitrary; livekit-agents ignores them all too
            logger.error("tools handed off to {} agents at once: ignoring the handoffs",
                         len(handoffs))
            handoffs = []
        called = [o.called() for o in outcomes]
        outputs = [llm.ChatMessage.create_tool_from_called_function(c) for c in called]
        self._record_tool_round(calls, outputs, text)
        self._emit("function_calls_finished", called)
        ev = FunctionToolsExecutedEvent(
            function_calls=list(calls),
            function_call_outputs=outputs,
            _reply_required=any(o.reply for o in outcomes),
            _handoff_required=bool(handoffs),
        )
        self._host.emit("function_tools_executed", ev)

        new_agent = handoffs[0] if handoffs and ev.has_agent_handoff else None
        if new_agent is not None:
            self._spawn(self._handoff_after, handle, new_agent)
        agent = self._host.agent
        if not ev.has_tool_reply or agent is None or self._closed:
            return None
        request = self._request_ctx(agent, self._chat_ctx, self._generated.get(handle.id))
        # after a handoff the agent handing over only answers the result: no more tools
        fnc_ctx = None if new_agent is not None else agent.fnc_ctx
        return self._llm.chat(chat_ctx=request, fnc_ctx=fnc_ctx)

    def _finish_interrupted_tools(
        self, calls: list[llm.FunctionCallInfo], runs: list[gevent.Greenlet]
    ) -> None:
        try:
            gevent.joinall(runs)
            outcomes = []
            for call, g in zip(calls, runs):
                outcome = self._outcome(call, g)
                if outcome.agent is not None:
                    outcome = replace(outcome, agent=None, result=None,
                                      exception=ToolError(HANDOFF_INTERRUPTED))
                outcomes.append(replace(outcome, reply=False))
            called = [o.called() for o in outcomes]
            outputs = [llm.ChatMessage.create_tool_from_called_function(c) for c in called]
            # what was said before the calls is already in the conversation: the interrupted
            # speech committed it as its own message
            self._record_tool_round(calls, outputs, "")
            self._emit("function_calls_finished", called)
            self._host.emit(
                "function_tools_executed",
                FunctionToolsExecutedEvent(function_calls=list(calls),
                                           function_call_outputs=outputs),
            )
        finally:
            self._tools_running -= 1
            self._host.refresh_agent_state()

    def _handoff_after(self, handle: SpeechHandle, agent: Agent) -> None:
        # the agent handing over finishes its speech (its answer to the tool result) first
        handle.wait_for_playout()
        if not self._closed:
            self._host.switch_agent(agent)
