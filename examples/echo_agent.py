"""An offline voice agent: silero VAD, pocketsphinx STT, espeak TTS and an "LLM" that answers
from the transcript. Runs with no network and no API key:

    syncagents console examples/echo_agent.py --input examples/hello.wav --output reply.wav
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from syncagents import AutoSubscribe, JobContext, VoiceAssistant, WorkerOptions, llm
from syncagents.plugins import espeak, pocketsphinx, silero


class EchoLLM(llm.LLM):
    """Answers by repeating what it heard: a stand-in for a real model, built like a plugin."""

    def _chat(
        self,
        chat_ctx: llm.ChatContext,
        fnc_ctx: llm.FunctionContext | None,
        temperature: float | None,
    ) -> Iterator[llm.ChatChunk]:
        heard = next(
            (m.content for m in reversed(chat_ctx.messages) if m.role == "user"), ""
        )
        reply = f"You said: {heard}." if heard else "I did not catch that."
        for word in reply.split(" "):
            yield llm.ChatChunk(choices=[llm.Choice(delta=llm.ChoiceDelta(content=word + " "))])


def prewarm() -> dict[str, Any]:
    # Loaded once per process, before the worker registers: jobs start without model loading
    # (a pocketsphinx decoder takes ~0.5 s and ~95 MB to load; it loads off the hub).
    return {"vad": silero.VAD(), "stt": pocketsphinx.STT()}


def entrypoint(ctx: JobContext) -> None:
    ctx.connect(auto_subscribe=AutoSubscribe.AUDIO_ONLY)
    participant = ctx.wait_for_participant()
    models = ctx.userdata or prewarm()
    assistant = VoiceAssistant(
        vad=models["vad"],
        stt=models["stt"],
        llm=EchoLLM(),
        tts=espeak.TTS(),
        chat_ctx=llm.ChatContext().append(role="system", text="You repeat what you hear."),
    )
    assistant.start(ctx.room, participant)
    assistant.say("Hello, I am listening.", allow_interruptions=False)


opts = WorkerOptions(entrypoint_fnc=entrypoint, prewarm_fnc=prewarm)

if __name__ == "__main__":
    from syncagents import cli

    cli.run_app(opts)
