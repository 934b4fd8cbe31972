"""``AgentSession``: livekit-agents 1.x's session, blocking, on the ``VoiceAssistant`` pipeline.

::

    session = AgentSession(vad=silero.VAD(), stt=pocketsphinx.STT(), llm=my_llm,
                           tts=espeak.TTS(), userdata=MyData())
    session.start(room=ctx.room, agent=Receptionist())

The session owns one ``SessionAssistant`` (a ``VoiceAssistant``) and an active ``Agent``;
the agent supplies the instructions and tools of each LLM request and its hooks, and a tool
returning another agent hands the conversation over (``update_agent``). Every greenlet it
starts belongs to the assistant: to the job it was started in, and dies with ``close()``.

``history`` is the whole conversation across agents (user turns, what the agent said — only
what was heard when interrupted —, tool calls and results); each agent also keeps its own
conversation (``Agent.chat_ctx``), which is what its requests are made from.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Generic, TypeVar

import gevent
from loguru import logger

from .. import llm as llm_mod
from .. import stt as stt_mod
from .. import tts as tts_mod
from .. import vad as vad_mod
from ..voice_assistant import SpeechHandle, TurnMetrics
from .agent import Agent, attach_session, detach_session, running_session
from .events import (
    AgentState,
    AgentStateChangedEvent,
    CloseEvent,
    CloseReason,
    ConversationItemAddedEvent,
    MetricsCollectedEvent,
    SessionEventEmitter,
    UserState,
    UserStateChangedEvent,
)
from .session_assistant import SessionAssistant

__all__ = ["AgentSession"]

Userdata_T = TypeVar("Userdata_T")

# on_exit at close gets this long before the session closes anyway
ON_EXIT_TIMEOUT = 5.0
# a handoff waits this long for the current agent's on_enter to finish before its on_exit
# (beyond, they overlap: an on_enter may wait for a speech that waits for the handoff)
ENTER_GRACE = 2.0
# interrupt() waits this long for the interrupted speeches to be settled
_INTERRUPT_SETTLE = 5.0


class AgentSession(SessionEventEmitter, Generic[Userdata_T]):
    """A voice conversation run by ``Agent``s (see the module doc).

    ``allow_interruptions``: whether the user may cut the agent off (per speech:
    ``say(allow_interruptions=)``); ``min_interruption_duration`` seconds of user speech
    over the agent, and ``min_interruption_words`` transcribed words, are needed to do so.
    ``min_endpointing_delay``: silence (s) after the user's speech before the turn is over.
    ``preemptive_generation``: start the LLM request (and synthesis) on the first final
    transcript, before the turn is over (discarded if the user goes on).
    ``user_away_timeout``: seconds of silence on both sides before the user is ``away``
    (None: never). ``userdata``: anything; tools get it as ``context.userdata``.

    Events (``@session.on(name)``, handlers run in the session's greenlets and should be
    quick): ``user_input_transcribed``, ``conversation_item_added``, ``agent_state_changed``,
    ``user_state_changed``, ``function_tools_executed``, ``metrics_collected``, ``error``,
    ``close`` — each with one payload, the dataclass of ``syncagents.voice.events`` of the
    same name.
    """

    def __init__(
        self,
        *,
        vad: vad_mod.VAD,
        stt: stt_mod.STT,
        llm: llm_mod.LLM,
        tts: tts_mod.TTS,
        allow_interruptions: bool = True,
        min_endpointing_delay: float = 0.5,
        userdata: Userdata_T | None = None,
        min_interruption_duration: float = 0.5,
        min_interruption_words: int = 0,
        preemptive_generation: bool = True,
        user_away_timeout: float | None = 15.0,
    ) -> None:
        super().__init__()
        self._vad = vad
        self._stt = stt
        self._llm = llm
        self._tts = tts
        self._allow_interruptions = allow_interruptions
        self._min_endpointing_delay = min_endpointing_delay
        self._min_interruption_duration = min_interruption_duration
        self._min_interruption_words = min_interruption_words
        self._preemptive = preemptive_generation
        self._user_away_timeout = user_away_timeout
        self._userdata = userdata
        self._history = llm_mod.ChatContext()
        self._agent: Agent | None = None
        self._assistant: SessionAssistant | None = None
        self._agent_state: AgentState = "initializing"
        self._user_state: UserState = "listening"
        self._away_timer: gevent.Greenlet | None = None
        self._entering: gevent.Greenlet | None = None  # the current agent's on_enter
        self._started = False
        self._closed = False

    # -- state ---------------------------------------------------------------------------

    @property
    def userdata(self) -> Userdata_T:
        """What was given as ``userdata`` (None if nothing was)."""
        return self._userdata  # type: ignore[return-value]

    @userdata.setter
    def userdata(self, value: Userdata_T) -> None:
        self._userdata = value

    @property
    def history(self) -> llm_mod.ChatContext:
        """The conversation so far, across agents (the session keeps appending to it)."""
        return self._history

    @property
    def current_agent(self) -> Agent:
        """The agent in charge; ``RuntimeError`` before ``start()``."""
        if self._agent is None:
            raise RuntimeError("AgentSession isn't running")
        return self._agent

    @property
    def agent_state(self) -> AgentState:
        """``initializing``, ``listening``, ``thinking`` or ``speaking``."""
        return self._agent_state

    @property
    def user_state(self) -> UserState:
        """``listening``, ``speaking`` or ``away``."""
        return self._user_state

    @property
    def llm(self) -> llm_mod.LLM:
        """The LLM every agent of the session uses."""
        return self._llm

    @property
    def tts(self) -> tts_mod.TTS:
        """The TTS (wrapped in ``tts.StreamAdapter`` once started, if it does not stream)."""
        return self._assistant.tts if self._assistant is not None else self._tts

    @property
    def stt(self) -> stt_mod.STT:
        """The STT (wrapped in ``stt.StreamAdapter`` once started, if it does not stream)."""
        return self._assistant.stt if self._assistant is not None else self._stt

    @property
    def vad(self) -> vad_mod.VAD:
        """The VAD."""
        return self._vad

    # -- control -------------------------------------------------------------------------

    def start(self, *, room: Any, agent: Agent, participant: Any = None) -> None:
        """Start the conversation in ``room`` (connected) with ``agent`` in charge, listening to
        ``participant`` (a participant or an identity; default: the first remote participant,
        now or when one joins). Returns once the agent is listening; ``agent.on_enter()``
        runs meanwhile in a greenlet of its own."""
        if self._closed:
            raise RuntimeError("AgentSession is closed")
        if self._started:
            raise RuntimeError("AgentSession already started")
        if running_session(agent) is not None:
            raise RuntimeError(f"agent {agent.id} already runs in an AgentSession")
        assistant = SessionAssistant(
            _Host(self),
            vad=self._vad,
            stt=self._stt,
            llm=self._llm,
            tts=self._tts,
            fnc_ctx=agent.fnc_ctx,
            allow_interruptions=self._allow_interruptions,
            interrupt_speech_duration=self._min_interruption_duration,
            interrupt_min_words=self._min_interruption_words,
            min_endpointing_delay=self._min_endpointing_delay,
            preemptive_synthesis=self._preemptive,
        )
        assistant.on("user_started_speaking", lambda: self._set_user_state("speaking"))
        assistant.on("user_stopped_speaking", lambda: self._set_user_state("listening"))
        assistant.on("agent_started_speaking", self._refresh_agent_state)
        assistant.on("agent_speech_committed", self._item_added)
        assistant.on("agent_speech_interrupted", self._on_speech_interrupted)
        assistant.on("metrics_collected", self._on_metrics)
        self._assistant = assistant
        self._activate(agent)
        assistant.start(room, participant)
        self._started = True
        self._set_agent_state("listening")
        self._entering = assistant.spawn(self._run_hook, agent, "on_enter")

    def say(
        self,
        text: str | Iterable[str],
        allow_interruptions: bool | None = None,
        add_to_chat_ctx: bool = True,
    ) -> SpeechHandle:
        """Queue ``text`` (or an iterator of text chunks) to be spoken after what is queued
        already; synthesis starts now. ``allow_interruptions``: default, the session's."""
        assistant = self._running()
        if allow_interruptions is None:
            allow_interruptions = self._allow_interruptions
        return assistant.say(
            text, allow_interruptions=allow_interruptions, add_to_chat_ctx=add_to_chat_ctx
        )

    def generate_reply(
        self,
        instructions: str | None = None,
        user_input: str | None = None,
        allow_interruptions: bool | None = None,
    ) -> SpeechHandle:
        """Queue a reply of the current agent's LLM, with its tools. ``user_input`` joins the
        conversation first, as a user message; ``instructions`` guide this reply only."""
        assistant = self._running()
        if user_input:
            msg = llm_mod.ChatMessage(role="user", content=user_input)
            assistant.chat_ctx.messages.append(msg)
            self._item_added(msg)
        if allow_interruptions is None:
            allow_interruptions = self._allow_interruptions
        handle = assistant.generate(instructions, allow_interruptions)
        self._refresh_agent_state()
        return handle

    def interrupt(self, force: bool = False) -> None:
        """Stop the speech playing and drop the ones queued. Speeches that disallow
        interruptions are kept, and ``RuntimeError`` is raised when the one playing is such
        a speech, unless ``force``. Returns once the interrupted speeches are settled (what
        was heard is in the conversation)."""
        assistant = self._running()
        current = assistant.current_speech
        if (
            current is not None
            and not current.done
            and not current.allow_interruptions
            and not force
        ):
            raise RuntimeError("the current speech does not allow interruptions")
        interrupted = assistant.interrupt_speeches(force)
        with gevent.Timeout(_INTERRUPT_SETTLE, False):
            for handle in interrupted:
                handle.wait_for_playout()

    def update_agent(self, agent: Agent) -> None:
        """Hand the conversation over to ``agent`` now: the current agent's ``on_exit()``
        runs here, then ``agent.on_enter()`` in a greenlet of its own. Before ``start()``,
        only sets the agent ``start`` will use."""
        if self._closed:
            raise RuntimeError("AgentSession is closed")
        if not self._started:
            self._agent = agent
            return
        self._switch_agent(agent)

    def close(self) -> None:
        """End the session: the agent's ``on_exit()`` runs (up to ``ON_EXIT_TIMEOUT`` s), every
        greenlet of the session is stopped, speeches not finished are dropped, ``close`` is
        emitted. Also happens when the room disconnects. Idempotent."""
        self._close(CloseReason.USER_INITIATED)

    # -- plumbing ------------------------------------------------------------------------

    def _running(self) -> SessionAssistant:
        if self._closed:
            raise RuntimeError("AgentSession is closed")
        if self._assistant is None:
            raise RuntimeError("AgentSession isn't running: call start() first")
        return self._assistant

    def _close(self, reason: CloseReason, error: BaseException | None = None) -> None:
        if self._closed:
            return
        self._closed = True
        agent = self._agent
        if self._started and agent is not None:
            exiting = gevent.spawn(self._run_hook, agent, "on_exit")
            exiting.join(timeout=ON_EXIT_TIMEOUT)
            if not exiting.dead:
                logger.warning("{}.on_exit did not finish within {} s", agent.id, ON_EXIT_TIMEOUT)
                exiting.kill(block=False)
            detach_session(agent)
        self._cancel_away_timer()
        if self._assistant is not None:
            self._assistant.close()
        self.emit("close", CloseEvent(reason=reason, error=error))

    def _activate(self, agent: Agent) -> None:
        chat_ctx = attach_session(agent, self)
        self._agent = agent
        assistant = self._assistant
        if assistant is not None:
            # the assistant appends to the agent's own conversation from now on
            assistant.use_agent_context(chat_ctx, agent.fnc_ctx)

    def _switch_agent(self, agent: Agent) -> None:
        old = self._agent
        if agent is old or self._closed:
            return
        logger.info("agent handoff: {} -> {}", old.id if old else None, agent.id)
        entering = self._entering
        if entering is not None and entering is not gevent.getcurrent():
            entering.join(timeout=ENTER_GRACE)  # an agent exits after it entered
        if old is not None:
            self._run_hook(old, "on_exit")
            detach_session(old)
        self._activate(agent)
        if self._assistant is not None and not self._closed:
            self._entering = self._assistant.spawn(self._run_hook, agent, "on_enter")

    @staticmethod
    def _run_hook(agent: Agent, name: str) -> None:
        try:
            getattr(agent, name)()
        except Exception:
            logger.opt(exception=True).error("{}.{} failed", agent.id, name)

    def _item_added(self, msg: llm_mod.ChatMessage) -> None:
        self._history.messages.append(msg)
        if msg.role in ("user", "assistant") and msg.content:
            self.emit("conversation_item_added", ConversationItemAddedEvent(item=msg))

    def _on_speech_interrupted(self, msg: llm_mod.ChatMessage) -> None:
        # the assistant keeps an interrupted speech only if some of it was heard
        assistant = self._assistant
        if assistant is not None and any(m is msg for m in reversed(assistant.chat_ctx.messages)):
            self._item_added(msg)

    def _on_metrics(self, metrics: TurnMetrics) -> None:
        self.emit("metrics_collected", MetricsCollectedEvent(metrics=metrics))

    def _refresh_agent_state(self) -> None:
        assistant = self._assistant
        if assistant is None or not self._started or self._closed:
            return
        state: AgentState
        if assistant.tools_running:
            state = "thinking"
        elif assistant.agent_speaking:
            state = "speaking"
        elif assistant.preparing_reply():
            state = "thinking"
        else:
            state = "listening"
        self._set_agent_state(state)

    def _set_agent_state(self, state: AgentState) -> None:
        if state == self._agent_state:
            return
        old, self._agent_state = self._agent_state, state
        self.emit("agent_state_changed", AgentStateChangedEvent(old_state=old, new_state=state))
        self._update_away_timer()

    def _set_user_state(self, state: UserState) -> None:
        if state == self._user_state or self._closed:
            return
        old, self._user_state = self._user_state, state
        self.emit("user_state_changed", UserStateChangedEvent(old_state=old, new_state=state))
        self._update_away_timer()

    def _update_away_timer(self) -> None:
        idle = self._user_state == "listening" and self._agent_state == "listening"
        if idle and self._user_away_timeout is not None and not self._closed:
            if self._away_timer is None and self._assistant is not None:
                self._away_timer = self._assistant.spawn(self._away_after,
                                                         self._user_away_timeout)
        else:
            self._cancel_away_timer()

    def _cancel_away_timer(self) -> None:
        timer, self._away_timer = self._away_timer, None
        if timer is not None and timer is not gevent.getcurrent():
            timer.kill(block=False)

    def _away_after(self, seconds: float) -> None:
        gevent.sleep(seconds)  # a timer: both sides have been quiet this long
        self._away_timer = None
        self._set_user_state("away")

    def __repr__(self) -> str:
        agent = self._agent.id if self._agent is not None else None
        return f"AgentSession(agent={agent!r}, state={self._agent_state!r})"


class _Host:
    """The session as its ``SessionAssistant`` sees it (``session_assistant.SessionHost``)."""

    def __init__(self, session: AgentSession[Any]) -> None:
        self.session = session

    @property
    def agent(self) -> Agent | None:
        return self.session._agent

    def item_added(self, msg: llm_mod.ChatMessage) -> None:
        self.session._item_added(msg)

    def refresh_agent_state(self) -> None:
        self.session._refresh_agent_state()

    def emit(self, event: str, payload: Any) -> None:
        self.session.emit(event, payload)

    def assistant_closed(self) -> None:
        # the assistant closes itself when the room disconnects (the job is ending)
        self.session._close(CloseReason.JOB_SHUTDOWN)

    def switch_agent(self, agent: Agent) -> None:
        self.session._switch_agent(agent)
