"""``VoiceAssistant``: a voice conversation with one participant, VAD → STT → LLM → TTS.

How a conversation runs (every piece in greenlets owned by the assistant, killed by
``close()``):

* the linked participant's microphone goes to a VAD stream and an STT stream
  (``HumanInput``); the agent's voice goes out on its own track (``AgentOutput``);
* the ``Endpointer`` decides when the user's turn is over: ``min_endpointing_delay`` after
  the user's speech really ended (where the VAD last heard it, not when the VAD reported it);
  with ``preemptive_synthesis`` the reply (LLM + TTS) starts on each final transcript, even
  before the VAD's end of speech, its audio is held back until the turn is validated, and it
  is discarded (never played, never in the chat context) when the user speaks again first;
* speeches (replies and ``say()``) play one at a time, in queue order, from one speech-loop
  greenlet; each playout runs in its own greenlet so an interruption is a kill: the frame being
  handed over is dropped and the source's queue cleared, so the agent goes silent within a
  frame;
* user speech interrupts the playing speech (when it allows it) once it overlapped it for
  ``interrupt_speech_duration`` seconds of VAD speech and, with ``interrupt_min_words``, that
  many words were transcribed (interim or final). Overlap is the VAD speech duration counted
  from when the speech became the one playing, so a ``say()`` started while the user talks
  is not cut by speech that was already under way;
* the chat context then holds only what was heard (see ``played_text``).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable
from typing import Any

import gevent
from gevent.pool import Group
from loguru import logger

from .. import llm as llm_mod
from .. import stt as stt_mod
from .. import tokenize
from .. import tts as tts_mod
from .. import vad as vad_mod
from ..channel import Chan
from ..runtime import bind_job_id, current_job_id
from .agent_output import AgentOutput
from .clock import MONOTONIC, Clock
from .endpointing import Endpointer
from .events import EventEmitter
from .human_input import HumanInput, is_microphone
from .played_text import count_words, slice_words
from .reply import ReplyHost, reply_text
from .speech_handle import SpeechHandle
from .synthesis import SpeechSynthesis, TextSource
from .transcription import TranscriptionPublisher, new_segment_id
from .user_turn import UserTurn
from .watch import assistant_started

__all__ = ["VoiceAssistant"]

BeforeLLMCallback = Callable[["VoiceAssistant", llm_mod.ChatContext], Any]
BeforeTTSCallback = Callable[["VoiceAssistant", TextSource], Any]

# how long user_turn_pending waits for the transcript of speech the VAD has ended (an STT
# that never reports the end of an utterance must not keep the assistant "busy" forever)
TRANSCRIPT_WAIT = 10.0

# livekit's chat components send messages as JSON on this data topic
CHAT_TOPIC = "lk-chat-topic"


class VoiceAssistant(EventEmitter):
    """A voice agent for one participant of a room.

    A batch STT is wrapped in ``stt.StreamAdapter(stt=, vad=)`` and a batch TTS in
    ``tts.StreamAdapter(tts=, sentence_tokenizer=tokenize.basic.SentenceTokenizer())``.
    One VAD stream runs per participant: a ``stt.StreamAdapter`` (given or made here)
    recognizes the speech segments of the assistant's ``vad`` stream, its own VAD unused.

    ``before_llm_cb(assistant, chat_ctx)``: called for each reply with the context the reply
    is made from (a copy ending with the user's message; editing it is fine). Return the
    ``LLMStream`` to use (e.g. ``assistant.llm.chat(chat_ctx=chat_ctx, fnc_ctx=...)``),
    ``None`` (or ``True``) for the default ``llm.chat(chat_ctx=, fnc_ctx=)`` on the possibly
    edited context, or ``False`` to skip replying to this turn — as in livekit-agents.

    ``before_tts_cb(assistant, source)``: gets the speech's text (a string for ``say(str)``,
    else an iterator of text chunks) and returns what to synthesize (a string or an iterable
    of strings). The chat context and transcriptions keep the original text.

    ``min_endpointing_delay``: seconds after the end of the user's speech before their turn
    counts as over (counted from where the VAD last heard speech, so the VAD's own silence
    wait is part of it, not added to it). ``preemptive_synthesis``: start the reply (LLM and
    TTS) on the final transcript, while that delay runs; its audio plays when the turn ends,
    and it is dropped if the user speaks again first. ``clock``: the clock turn-taking and
    the turn metrics run on (default ``time.monotonic``; a ``clock.VirtualClock`` lets tests
    run the endpointing delay in virtual time).

    Events (``@assistant.on(name)``; handlers run in the assistant's greenlets, in order, and
    should be quick): ``user_started_speaking()``, ``user_stopped_speaking()``,
    ``agent_started_speaking()``, ``agent_stopped_speaking()``,
    ``user_speech_committed(ChatMessage)``, ``agent_speech_committed(ChatMessage)``,
    ``agent_speech_interrupted(ChatMessage)`` (what was heard),
    ``function_calls_collected(list[FunctionCallInfo])``,
    ``function_calls_finished(list[CalledFunction])``, ``metrics_collected(TurnMetrics)``.
    """

    def __init__(
        self,
        *,
        vad: vad_mod.VAD,
        stt: stt_mod.STT,
        llm: llm_mod.LLM,
        tts: tts_mod.TTS,
        chat_ctx: llm_mod.ChatContext | None = None,
        fnc_ctx: llm_mod.FunctionContext | None = None,
        allow_interruptions: bool = True,
        interrupt_speech_duration: float = 0.5,
        interrupt_min_words: int = 0,
        min_endpointing_delay: float = 0.5,
        preemptive_synthesis: bool = True,
        transcription: bool = True,
        before_llm_cb: BeforeLLMCallback | None = None,
        before_tts_cb: BeforeTTSCallback | None = None,
        clock: Clock | None = None,
    ) -> None:
        super().__init__()
        if not stt.capabilities.streaming:
            stt = stt_mod.StreamAdapter(stt=stt, vad=vad)
        if not tts.capabilities.streaming:
            tts = tts_mod.StreamAdapter(
                tts=tts, sentence_tokenizer=tokenize.basic.SentenceTokenizer()
            )
        self._vad = vad
        self._stt = stt
        self._llm = llm
        self._tts = tts
        self._chat_ctx = chat_ctx if chat_ctx is not None else llm_mod.ChatContext()
        self._fnc_ctx = fnc_ctx
        self._allow_interruptions = allow_interruptions
        self._interrupt_speech_duration = interrupt_speech_duration
        self._interrupt_min_words = interrupt_min_words
        self._preemptive = preemptive_synthesis
        self._transcription = transcription
        self._before_llm_cb = before_llm_cb
        self._before_tts_cb = before_tts_cb

        self._group = Group()
        self._job_id: str | None = current_job_id()
        self._queue: Chan[SpeechHandle] = Chan()  # speeches in the order they will play
        self._handles: set[SpeechHandle] = set()  # every speech not done yet
        self._replies: list[SpeechHandle] = []  # validated replies not done yet
        self._pending_reply: SpeechHandle | None = None  # preemptive, turn not validated yet
        self._current: SpeechHandle | None = None
        self._agent_speaking = False

        self._room: Any = None
        self._started = False
        self._closed = False
        self._output: AgentOutput | None = None
        self._transcriptions: TranscriptionPublisher | None = None
        self._input: HumanInput | None = None
        self._linked: str | None = None  # identity of the participant we listen to
        self._fixed_participant = False  # given to start(): never switch to someone else

        self._clock: Clock = clock if clock is not None else MONOTONIC
        self._endpointer = Endpointer(
            min_endpointing_delay,
            spawn=self._spawn,
            on_end_of_turn=self._on_end_of_turn,
            clock=self._clock,
        )
        self._turn = UserTurn()  # the user's current utterance and turn
        self._reply_host = ReplyHost(
            start_llm=self._start_llm,
            run_tool_calls=self._run_tool_calls,
            tools_collected=functools.partial(self._emit, "function_calls_collected"),
            now=self._clock.now,
        )
        self._tts_ttfb: dict[str, float] = {}

        self._stt.on("metrics_collected", self._on_stt_metrics)
        self._tts.on("metrics_collected", self._on_tts_metrics)

    # -- public ------------------------------------------------------------------------------

    @property
    def chat_ctx(self) -> llm_mod.ChatContext:
        """The conversation so far (the assistant keeps appending to this very object)."""
        return self._chat_ctx

    @property
    def fnc_ctx(self) -> llm_mod.FunctionContext | None:
        """The tools offered to the LLM on every reply, if any."""
        return self._fnc_ctx

    @property
    def llm(self) -> llm_mod.LLM:
        """The LLM that writes the replies."""
        return self._llm

    @property
    def tts(self) -> tts_mod.TTS:
        """The TTS in use (wrapped in ``tts.StreamAdapter`` when it does not stream)."""
        return self._tts

    @property
    def stt(self) -> stt_mod.STT:
        """The STT in use (wrapped in ``stt.StreamAdapter`` when it does not stream)."""
        return self._stt

    @property
    def vad(self) -> vad_mod.VAD:
        """The VAD that hears the user's speech."""
        return self._vad

    @property
    def clock(self) -> Clock:
        """The clock turn-taking and the turn metrics run on (see ``clock=``)."""
        return self._clock

    @property
    def agent_speaking(self) -> bool:
        """The agent's audio is playing (first frame handed over, playout not finished)."""
        return self._agent_speaking

    @property
    def user_speaking(self) -> bool:
        """The VAD hears the user (between its START and END of speech)."""
        return self._endpointer.speaking

    @property
    def user_turn_pending(self) -> bool:
        """The user finished saying something and the reply has not started playing yet (nor
        been discarded). This includes the wait for the transcript of speech the VAD has
        ended (a batch STT recognizes it only then), bounded by ``TRANSCRIPT_WAIT`` seconds."""
        if self._endpointer.pending:
            return True
        if self._turn.transcript_due(self._clock.now()):
            return True
        return any(not (h.started or h.cancelled or h.done) for h in self._replies)

    @property
    def current_speech(self) -> SpeechHandle | None:
        """The speech playing (or about to play), if any."""
        return self._current

    @property
    def linked_participant(self) -> str | None:
        """Identity of the participant the assistant listens to."""
        return self._linked

    def start(self, room: Any, participant: Any = None) -> None:
        """Start listening to ``participant`` (a participant or an identity; default: the first
        remote participant, now or when one joins) and publish the agent's voice.

        Returns once the agent's track is published; the work then runs in greenlets owned
        by the assistant. Raises what publishing raised (e.g. the room is not connected):
        nothing is left running and ``start()`` may be called again."""
        if self._started:
            raise RuntimeError("VoiceAssistant already started")
        if self._closed:
            raise RuntimeError("VoiceAssistant is closed")
        self._job_id = current_job_id() or self._job_id
        output = AgentOutput(self._tts.sample_rate, self._tts.num_channels, self._clock)
        # before publishing: it watches for the first subscriber, which may come at once
        transcriptions = TranscriptionPublisher(room, self._spawn) if self._transcription else None
        try:
            # blocking, so that an agent that could not publish its voice fails here, where
            # the caller can act on it, instead of staying silent with a log line
            output.publish(room)
        except BaseException:
            if transcriptions is not None:
                transcriptions.close()
            output.close()
            raise
        self._started = True
        self._room = room
        self._output = output
        self._transcriptions = transcriptions
        for event, handler in self._room_handlers().items():
            room.on(event, handler)
        self._spawn(self._speech_loop)

        if participant is not None:
            self._fixed_participant = True
            identity = participant if isinstance(participant, str) else participant.identity
            self._link(str(identity))
        else:
            for identity in list(room.remote_participants):
                self._link(str(identity))
                break

        assistant_started(room, self)

    def say(
        self,
        source: str | Iterable[str] | llm_mod.LLMStream,
        allow_interruptions: bool = True,
        add_to_chat_ctx: bool = True,
    ) -> SpeechHandle:
        """Queue a speech: a text, an iterator of text chunks, or an ``llm.LLMStream`` (its
        text is spoken; tool calls in it are not run). It plays after the speeches queued
        before it, whether or not the user talks; synthesis starts now. Returns at once.

        A failure inside the speech (its source raising, the TTS failing) ends that speech
        with what it said so far, logged; the assistant goes on with the next one."""
        if self._closed:
            raise RuntimeError("VoiceAssistant is closed")
        handle = SpeechHandle(
            self._interrupt_speech,
            allow_interruptions=allow_interruptions,
            add_to_chat_ctx=add_to_chat_ctx,
            is_reply=False,
        )
        handle.mark_validated()
        handle.set_synthesis(self._synthesize(source))
        self._handles.add(handle)
        self._queue.send_nowait(handle)
        return handle

    def close(self) -> None:
        """Stop everything the assistant runs; speeches not finished are dropped. Also
        happens when the room disconnects."""
        if self._closed:
            return
        self._closed = True
        room = self._room
        if room is not None and hasattr(room, "off"):
            for event, handler in self._room_handlers().items():
                room.off(event, handler)
        self._endpointer.close()
        if self._input is not None:
            self._input.close()
            self._input = None
        self._queue.close()
        for handle in list(self._handles):
            handle.mark_cancelled()
            if handle.synthesis is not None:
                handle.synthesis.close()
        me = gevent.getcurrent()
        others = [g for g in list(self._group) if g is not me]
        gevent.killall(others, block=True, timeout=5)
        for handle in list(self._handles):
            handle.mark_done()
        self._handles.clear()
        if self._transcriptions is not None:
            self._transcriptions.close()
        if self._output is not None:
            self._output.close()
        self._stt.off("metrics_collected", self._on_stt_metrics)
        self._tts.off("metrics_collected", self._on_tts_metrics)
        self._agent_speaking = False

    # -- plumbing ----------------------------------------------------------------------------

    def _spawn(self, fn: Callable[..., Any], *args: Any) -> gevent.Greenlet:
        # spawned from the caller (spawn tree) and bound explicitly: the spawning greenlet is
        # often a short-lived event handler, and the job id must outlive it
        g = self._group.spawn(fn, *args)
        if self._job_id is not None:
            bind_job_id(g, self._job_id)
        return g

    def _emit(self, event: Any, *args: Any) -> None:
        self.emit(event, *args)

    def _synthesize(self, source: TextSource | llm_mod.LLMStream) -> SpeechSynthesis:
        before: Callable[[TextSource], Any] | None = None
        if self._before_tts_cb is not None:
            before = functools.partial(self._before_tts_cb, self)
        return SpeechSynthesis(self._tts, source, spawn=self._spawn, before_tts=before)

    def _start_llm(
        self, chat_ctx: llm_mod.ChatContext, handle: SpeechHandle | None = None
    ) -> Any:
        """The LLM stream of a reply (``handle``), or None when ``before_llm_cb`` skipped it.
        Runs in the reply's synthesis greenlet; ``AgentSession`` overrides it."""
        if self._before_llm_cb is not None:
            stream = self._before_llm_cb(self, chat_ctx)
            if stream is False:
                return None
            if stream is not None and stream is not True:
                return stream
        return self._llm.chat(chat_ctx=chat_ctx, fnc_ctx=self._fnc_ctx)

    def _run_tool_calls(
        self,
        handle: SpeechHandle,
        stream: llm_mod.LLMStream,
        calls: list[llm_mod.FunctionCallInfo],
        text: str,
    ) -> llm_mod.LLMStream | None:
        """One round of a reply's tool calls (``text``: what the round said before them): run
        them, put the calls and results in the chat context, and return the LLM stream of the
        follow-up answer (None: no follow-up). ``AgentSession`` overrides it."""
        called = stream.execute_functions()
        ctx = self._chat_ctx
        ctx.messages.append(llm_mod.ChatMessage.create_tool_calls(calls, text=text))
        ctx.messages.extend(llm_mod.ChatMessage.create_tool_from_called_function(c) for c in called)
        self._emit("function_calls_finished", called)
        return self._llm.chat(chat_ctx=ctx, fnc_ctx=stream.fnc_ctx)

    def _on_stt_metrics(self, metrics: stt_mod.STTMetrics) -> None:
        if not metrics.streamed:
            self._turn.add_stt_duration(metrics.duration)

    def _on_tts_metrics(self, metrics: tts_mod.TTSMetrics) -> None:
        if metrics.ttfb >= 0 and any(
            h.synthesis is not None and h.synthesis.request_id == metrics.request_id
            for h in self._handles
        ):
            self._tts_ttfb.setdefault(metrics.request_id, metrics.ttfb)

    def _room_handlers(self) -> dict[str, Callable[..., None]]:
        """The room events the assistant follows, and its handler of each."""
        return {
            "track_subscribed": self._on_track_subscribed,
            "track_unsubscribed": self._on_track_unsubscribed,
            "participant_connected": self._on_participant_connected,
            "participant_disconnected": self._on_participant_disconnected,
            "disconnected": self._on_disconnected,
            "data_received": self._on_data_received,
        }

    # -- participant and tracks --------------------------------------------------------------

    def _link(self, identity: str) -> None:
        self._linked = identity
        participant = self._room.remote_participants.get(identity)
        if participant is None:
            return  # its tracks arrive with track_subscribed
        for publication in list(getattr(participant, "track_publications", {}).values()):
            track = getattr(publication, "track", None)
            if track is not None and is_microphone(track, publication):
                self._listen(track, publication, participant)
                return

    def _listen(self, track: Any, publication: Any, participant: Any) -> None:
        if self._closed or (self._input is not None and self._input.track is track):
            return
        if self._input is not None:
            self._input.close()
        sid = str(getattr(publication, "sid", "") or getattr(track, "sid", ""))
        logger.debug("assistant listening to {} (track {})", participant.identity, sid)
        self._input = HumanInput(
            track=track,
            participant=participant,
            track_sid=sid,
            vad=self._vad,
            stt=self._stt,
            on_vad_event=self._on_vad_event,
            on_stt_event=self._on_stt_event,
            job_id=self._job_id,
            clock=self._clock,
        )

    def _on_track_subscribed(self, track: Any, publication: Any, participant: Any) -> None:
        if self._closed:
            return
        identity = str(participant.identity)
        if self._linked is None and not self._fixed_participant:
            self._linked = identity
        if identity == self._linked and is_microphone(track, publication):
            self._listen(track, publication, participant)

    def _on_track_unsubscribed(self, track: Any, publication: Any, participant: Any) -> None:
        if self._input is not None and self._input.track is track:
            self._input.close()
            self._input = None

    def _on_disconnected(self, *args: Any) -> None:
        # nothing left to listen or talk to; this also ends the assistant with its job (a
        # job leaves its room when it ends) when the entrypoint did not close it
        logger.debug("room disconnected: closing the assistant")
        self.close()

    def _on_participant_connected(self, participant: Any) -> None:
        if self._linked is None and not self._fixed_participant and not self._closed:
            self._link(str(participant.identity))

    def _on_participant_disconnected(self, participant: Any) -> None:
        if str(participant.identity) != self._linked:
            return
        if self._input is not None:
            self._input.close()
            self._input = None
        if not self._fixed_participant and not self._closed:
            self._linked = None
            for identity in list(self._room.remote_participants):
                if identity != participant.identity:
                    self._link(str(identity))
                    break

    # -- the user's speech -------------------------------------------------------------------

    def _on_vad_event(self, ev: vad_mod.VADEvent) -> None:
        if ev.type is vad_mod.VADEventType.START_OF_SPEECH:
            self._endpointer.on_start_of_speech()
            self._turn.on_start(ev.speech_duration)
            self._discard_pending_reply()  # it answered a turn that is not over after all
            self._emit("user_started_speaking")
            self._check_interruption()
        elif ev.type is vad_mod.VADEventType.INFERENCE_DONE:
            if self._endpointer.speaking:
                self._turn.on_speech(ev.speech_duration)
                self._check_interruption()
        elif ev.type is vad_mod.VADEventType.END_OF_SPEECH:
            # the delay counts from where the speech ended, not from this report (which
            # comes the VAD's min_silence_duration later)
            ended_at = self._input.speech_ended_at(ev) if self._input is not None else None
            self._endpointer.on_end_of_speech(ended_at)
            self._turn.on_end(self._endpointer.end_of_speech_at, self._clock.now(), TRANSCRIPT_WAIT)
            self._emit("user_stopped_speaking")
            if self._turn.finals:  # a streaming STT already transcribed this utterance
                self._start_preemptive_reply()

    def _on_stt_event(self, ev: stt_mod.SpeechEvent) -> None:
        if ev.type in (
            stt_mod.SpeechEventType.FINAL_TRANSCRIPT,
            stt_mod.SpeechEventType.END_OF_SPEECH,
        ):
            self._turn.on_stt_reported()
        if ev.type is stt_mod.SpeechEventType.INTERIM_TRANSCRIPT:
            self._turn.on_interim(ev.text)
            self._check_interruption()
        elif ev.type is stt_mod.SpeechEventType.FINAL_TRANSCRIPT:
            text = ev.text.strip()
            if not text:
                return
            self._turn.on_final(text)
            self._publish_user_transcript(ev, text)
            self._check_interruption()
            self._endpointer.on_final_transcript(text)
            # also while the VAD still hears "speech": a streaming STT finalizes after a
            # shorter silence than the VAD's, and this is the time the reply can use
            self._start_preemptive_reply()

    def _publish_user_transcript(self, ev: stt_mod.SpeechEvent, text: str) -> None:
        if self._transcriptions is None or self._input is None:
            return
        alt = ev.alternatives[0] if ev.alternatives else None
        self._transcriptions.publish(
            identity=self._input.identity,
            track_sid=self._input.track_sid,
            segment_id=new_segment_id(),
            text=text,
            final=True,
            language=alt.language if alt is not None else "",
            start=alt.start_time if alt is not None else 0.0,
            end=alt.end_time if alt is not None else 0.0,
        )

    def _check_interruption(self) -> None:
        handle = self._current
        if handle is None or handle.done or handle.interrupted or not handle.allow_interruptions:
            return
        speaking = self._endpointer.speaking
        if not self._turn.interrupts(handle, speaking, self._interrupt_speech_duration):
            return
        min_words = self._interrupt_min_words
        if min_words > 0 and count_words(self._turn.said) < min_words:
            return
        logger.debug("user speech interrupts {}", handle.id)
        self._interrupt_speech(handle)

    # -- turns and replies -------------------------------------------------------------------

    def _new_reply(self, user_text: str) -> SpeechHandle:
        handle = SpeechHandle(
            self._interrupt_speech,
            allow_interruptions=self._allow_interruptions,
            add_to_chat_ctx=True,
            is_reply=True,
            user_question=user_text,
        )
        chat_ctx = self._chat_ctx.copy()
        chat_ctx.append(role="user", text=user_text)
        handle.set_synthesis(self._synthesize(reply_text(self._reply_host, handle, chat_ctx)))
        self._handles.add(handle)
        return handle

    def _start_preemptive_reply(self) -> None:
        text = self._endpointer.text
        if not self._preemptive or not text or self._closed:
            return
        pending = self._pending_reply
        if pending is not None and pending.user_question == text:
            return
        self._discard_pending_reply()
        self._pending_reply = self._new_reply(text)

    def _discard_pending_reply(self) -> None:
        handle, self._pending_reply = self._pending_reply, None
        if handle is not None:
            self._drop(handle)

    def _drop(self, handle: SpeechHandle) -> None:
        """Discard a speech that has not played anything."""
        handle.mark_cancelled()
        if handle.synthesis is not None:
            handle.synthesis.close()  # a playout reading it then ends at once
        if handle is not self._current:  # else the speech loop finishes it
            if handle in self._replies:
                self._replies.remove(handle)
            self._handles.discard(handle)
            handle.mark_done()

    def _on_end_of_turn(self) -> None:
        transcript_at = self._endpointer.transcript_at
        text = self._endpointer.take_turn()
        if not text or self._closed:
            return
        handle = self._pending_reply
        self._pending_reply = None
        preemptive = handle is not None and handle.user_question == text
        if handle is not None and not preemptive:
            self._drop(handle)
        if handle is None or not preemptive:
            handle = self._new_reply(text)
        timings = handle.timings
        if timings is not None:
            timings.user_text = text
            timings.preemptive = preemptive
            timings.validated_at = self._clock.now()
            timings.speech_ended_at = self._turn.speech_ended_at
            timings.end_of_speech_reported_at = self._endpointer.end_of_speech_reported_at
            timings.transcript_at = transcript_at
        stt_duration = self._turn.take_stt_duration()
        if timings is not None:
            timings.stt_duration = stt_duration

        self._commit_user_turn(text, handle)

    def _commit_user_turn(self, text: str, handle: SpeechHandle) -> None:
        """The user's turn is final: into the chat context, and its reply into the queue."""
        msg = llm_mod.ChatMessage.create(text=text, role="user")
        handle.set_user_message(msg)
        self._chat_ctx.messages.append(msg)
        self._emit("user_speech_committed", msg)

        # replies still waiting to play answer a question that is now incomplete
        for old in list(self._replies):
            if not old.started and not old.done:
                self._drop(old)
        handle.mark_validated()
        self._replies.append(handle)
        self._queue.send_nowait(handle)

    def _on_data_received(self, packet: Any) -> None:
        """A chat message (livekit's chat topic) from the linked participant is a user turn,
        answered like speech: text chat works with the same agent."""
        if getattr(packet, "topic", None) != CHAT_TOPIC or self._closed:
            return
        sender = getattr(getattr(packet, "participant", None), "identity", None)
        if self._linked is not None and sender is not None and sender != self._linked:
            return
        raw = bytes(packet.data)
        try:
            text = str(json.loads(raw)["message"])
        except (ValueError, KeyError, TypeError):
            text = raw.decode("utf-8", errors="replace")
        text = text.strip()
        if not text:
            return
        self._discard_pending_reply()
        self._commit_user_turn(text, self._new_reply(text))

    # -- playout -----------------------------------------------------------------------------

    def _speech_loop(self) -> None:
        assert self._output is not None
        output = self._output
        for handle in self._queue:
            try:
                self._play(output, handle)
            except Exception as exc:
                # one broken speech must not leave the assistant mute: it ends, the next plays
                logger.opt(exception=True).error("speech {} failed: {}", handle.id, exc)
                self._abandon(handle)
            finally:
                self._current = None

    def _play(self, output: AgentOutput, handle: SpeechHandle) -> None:
        """Play one speech from the queue to its end (or interruption) and commit it."""
        if handle.done:
            return
        if handle.interrupted or handle.cancelled:
            self._finish(handle)
            return
        self._current = handle
        # speech the user had already been making does not count towards interrupting it
        self._turn.speech_began(self._endpointer.speaking)
        handle.playout = self._spawn(
            output.play,
            handle,
            functools.partial(self._on_first_frame, handle),
            functools.partial(self._on_new_segment, handle),
        )
        handle.playout.join()
        self._finish(handle)

    def _abandon(self, handle: SpeechHandle) -> None:
        """A speech whose playout or commit failed: stop what is left of it and mark it done
        so that waiters return and the next speech plays."""
        playout = handle.playout
        if playout is not None and not playout.dead:
            playout.kill(block=True, timeout=5)
        if handle.synthesis is not None:
            handle.synthesis.close()
        if handle.started:
            self._agent_speaking = False
        if handle in self._replies:
            self._replies.remove(handle)
        self._handles.discard(handle)
        handle.mark_done()

    def _on_first_frame(self, handle: SpeechHandle) -> None:
        if handle.timings is not None:
            handle.timings.first_frame_at = self._clock.now()
        self._agent_speaking = True
        self._emit("agent_started_speaking")
        self._publish_agent_transcript(handle, handle.text, final=False)

    def _on_new_segment(self, handle: SpeechHandle) -> None:
        self._publish_agent_transcript(handle, handle.text, final=False)

    def _publish_agent_transcript(self, handle: SpeechHandle, text: str, final: bool) -> None:
        if self._transcriptions is None or not text:
            return
        output = self._output
        self._transcriptions.publish(
            identity=None,
            track_sid=(lambda: output.track_sid) if output is not None else "",
            segment_id=handle.id,
            text=text,
            final=final,
        )

    def _interrupt_speech(self, handle: SpeechHandle) -> None:
        if handle.done or handle.interrupted:
            return
        playout = handle.playout
        if handle is not self._current or playout is None:
            handle.mark_interrupted()
            self._drop(handle)  # not playing yet: nothing to stop, nothing was said
            return
        if playout.dead:
            return  # it already played out: too late to interrupt
        handle.mark_interrupted(decided_at=self._clock.now())
        # the playout clears the source's queue as it dies: silence within a frame
        playout.kill(block=True, timeout=5)

    def _finish(self, handle: SpeechHandle) -> None:
        """Commit what a speech said and report it; the speech is done afterwards."""
        if handle.done:
            return
        synthesis = handle.synthesis
        if synthesis is not None:
            synthesis.close()
        text = synthesis.text if synthesis is not None else ""
        total = count_words(text)
        played_all = not handle.interrupted and (synthesis is None or synthesis.error is None)
        words = total if played_all else handle.played_words(total)
        said = slice_words(text, 0, words)
        committed = slice_words(text, handle.tool_words, words)
        handle.commit(committed)
        msg = llm_mod.ChatMessage(role="assistant", content=committed)
        added = handle.add_to_chat_ctx and bool(committed) and handle.started
        if added:
            self._chat_ctx.messages.append(msg)

        if handle.started:
            self._agent_speaking = False
            self._emit("agent_stopped_speaking")
            self._publish_agent_transcript(handle, said, final=True)
            if handle.interrupted:
                self._emit("agent_speech_interrupted", msg)
            elif added:
                self._emit("agent_speech_committed", msg)
            if handle.timings is not None and handle.validated:
                if synthesis is not None:
                    handle.timings.tts_ttfb = self._tts_ttfb.get(synthesis.request_id, -1.0)
                if handle.interruption_delay >= 0:
                    handle.timings.interruption_delay = handle.interruption_delay
                metrics = handle.timings.metrics(handle.id, handle.interrupted)
                metrics.log()
                self._emit("metrics_collected", metrics)
        if synthesis is not None:
            self._tts_ttfb.pop(synthesis.request_id, None)
        if handle in self._replies:
            self._replies.remove(handle)
        self._handles.discard(handle)
        handle.mark_done()
