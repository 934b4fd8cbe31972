"""A voice assistant on any OpenAI-compatible chat model: OpenAI itself, or a local
llama.cpp, vLLM or Ollama server.

Speech stays on this machine by default (silero VAD, pocketsphinx STT, espeak TTS); set
``SYNCAGENTS_OPENAI_AUDIO=1`` to use the server's transcription (Whisper) and speech instead.

Try it without a LiveKit server (a WAV in, the agent's voice to a WAV; or ``--mic --speaker``;
``--text`` sends a chat message, answered like speech):

    OPENAI_API_KEY=sk-... \\
        syncagents console examples/assistant.py --input examples/hello.wav --output reply.wav

    # a local server needs no key; point OPENAI_BASE_URL at its /v1 and name its model
    OPENAI_BASE_URL=http://127.0.0.1:11434/v1 OPENAI_MODEL=llama3.2 \\
        syncagents console examples/assistant.py --text "Tell me a joke" --output reply.wav
    #   llama.cpp: llama-server -m model.gguf --port 8080  ->  http://127.0.0.1:8080/v1
    #   vLLM:      vllm serve <model>                      ->  http://127.0.0.1:8000/v1

Run it as a worker of a LiveKit server (``python examples/assistant.py run`` works too):

    LIVEKIT_URL=wss://... LIVEKIT_API_KEY=... LIVEKIT_API_SECRET=... OPENAI_API_KEY=sk-... \\
        syncagents run examples/assistant.py

Environment: ``OPENAI_MODEL`` (default ``gpt-4o-mini``), ``OPENAI_BASE_URL``,
``OPENAI_API_KEY``; with ``SYNCAGENTS_OPENAI_AUDIO=1`` also ``OPENAI_STT_MODEL`` (``whisper-1``),
``OPENAI_TTS_MODEL`` (``tts-1``) and ``OPENAI_TTS_VOICE`` (``alloy``).
"""

from __future__ import annotations

import os
from typing import Any

from syncagents import AutoSubscribe, JobContext, VoiceAssistant, WorkerOptions, llm, stt, tts
from syncagents.plugins import espeak, openai, pocketsphinx, silero

SYSTEM_PROMPT = (
    "You are a friendly voice assistant. Your answers are spoken aloud, so keep them short "
    "and conversational, and never use markdown, lists or emojis."
)


def openai_audio() -> bool:
    """Whether speech goes through the OpenAI-compatible server instead of offline plugins."""
    return os.environ.get("SYNCAGENTS_OPENAI_AUDIO", "").strip().lower() in ("1", "true", "yes")


def prewarm() -> dict[str, Any]:
    # Loaded once per process, before the worker registers, so jobs start without model
    # loading (a pocketsphinx decoder takes ~0.5 s and ~95 MB to load; it loads off the hub).
    # The VAD is needed either way: it finds the end of the user's turn.
    models: dict[str, Any] = {"vad": silero.VAD()}
    if not openai_audio():
        models["stt"] = pocketsphinx.STT()
    return models


def speech_plugins(models: dict[str, Any]) -> tuple[stt.STT, tts.TTS]:
    """The STT and TTS to use: offline by default, the server's with SYNCAGENTS_OPENAI_AUDIO=1."""
    if openai_audio():
        return (
            openai.STT(model=os.environ.get("OPENAI_STT_MODEL", "whisper-1")),
            openai.TTS(
                model=os.environ.get("OPENAI_TTS_MODEL", "tts-1"),
                voice=os.environ.get("OPENAI_TTS_VOICE", "alloy"),
            ),
        )
    return models.get("stt") or pocketsphinx.STT(), espeak.TTS()


def entrypoint(ctx: JobContext) -> None:
    ctx.connect(auto_subscribe=AutoSubscribe.AUDIO_ONLY)
    participant = ctx.wait_for_participant()
    models = ctx.userdata or prewarm()
    speech_to_text, text_to_speech = speech_plugins(models)
    # base_url and api_key come from OPENAI_BASE_URL / OPENAI_API_KEY
    model = openai.LLM(model=os.environ.get("OPENAI_MODEL", "gpt-4o-mini"))
    ctx.add_shutdown_callback(model.close)  # its HTTP connections end with the job
    assistant = VoiceAssistant(
        vad=models["vad"],
        stt=speech_to_text,
        llm=model,
        tts=text_to_speech,
        chat_ctx=llm.ChatContext().append(role="system", text=SYSTEM_PROMPT),
    )
    assistant.start(ctx.room, participant)
    assistant.say("Hello! How can I help you today?")


# no agent_name: LiveKit then dispatches this worker to every new room automatically (a named
# agent joins only rooms it is explicitly dispatched to)
opts = WorkerOptions(entrypoint_fnc=entrypoint, prewarm_fnc=prewarm)

if __name__ == "__main__":
    from syncagents import cli

    cli.run_app(opts)
