"""A voice assistant whose model can call Python functions ("tools"): here a weather lookup.

The tool is a method of an ``llm.FunctionContext`` subclass marked with ``@llm.ai_callable``;
its typed parameters (``Annotated[..., llm.TypeInfo(...)]``, an ``Enum`` for a closed set of
values, a default for an optional one) become the JSON schema the model sees. When the model
calls it, the VoiceAssistant checks the arguments, runs the method (plain blocking code, in a
greenlet of the job), gives the result back to the model and speaks its answer.

The weather is made up (the same place always gets the same weather) so the example needs no
weather service. The model must support tool calls: OpenAI's do; with llama.cpp start
``llama-server --jinja``; with Ollama pick a model tagged "tools" (e.g. ``llama3.2``).

    OPENAI_API_KEY=sk-... syncagents console examples/function_calling.py \\
        --text "What's the weather in Paris?" --output reply.wav

    OPENAI_BASE_URL=http://127.0.0.1:11434/v1 OPENAI_MODEL=llama3.2 \\
        syncagents console examples/function_calling.py --mic --speaker

    LIVEKIT_URL=wss://... LIVEKIT_API_KEY=... LIVEKIT_API_SECRET=... OPENAI_API_KEY=sk-... \\
        syncagents run examples/function_calling.py

Environment as in ``examples/assistant.py``: ``OPENAI_MODEL`` (default ``gpt-4o-mini``),
``OPENAI_BASE_URL``, ``OPENAI_API_KEY``, and ``SYNCAGENTS_OPENAI_AUDIO=1`` for the server's
STT/TTS instead of the offline pocketsphinx/espeak.
"""

from __future__ import annotations

import enum
import os
import zlib
from typing import Annotated, Any

from loguru import logger

from syncagents import AutoSubscribe, JobContext, VoiceAssistant, WorkerOptions, llm, stt, tts
from syncagents.plugins import espeak, openai, pocketsphinx, silero

SYSTEM_PROMPT = (
    "You are a weather assistant. Use the get_weather function to answer questions about the "
    "weather; never guess it. Your answers are spoken aloud: keep them to one or two short "
    "sentences, without markdown or emojis."
)

_CONDITIONS = ("sunny", "partly cloudy", "overcast", "light rain", "windy", "foggy")


class Unit(enum.Enum):
    CELSIUS = "celsius"
    FAHRENHEIT = "fahrenheit"


def made_up_weather(location: str) -> tuple[int, str]:
    """(degrees Celsius, conditions) for ``location``: invented, but stable for a place (a
    checksum of its name, not ``hash()``, which changes between processes)."""
    seed = zlib.crc32(" ".join(location.lower().split()).encode())
    return seed % 36 - 5, _CONDITIONS[(seed >> 8) % len(_CONDITIONS)]


class WeatherFunctions(llm.FunctionContext):
    @llm.ai_callable(description="Get the current weather at a location.")
    def get_weather(
        self,
        location: Annotated[
            str, llm.TypeInfo(description="The city, and the country if ambiguous, e.g. Paris")
        ],
        unit: Annotated[
            Unit, llm.TypeInfo(description="The temperature unit the user wants")
        ] = Unit.CELSIUS,
    ) -> str:
        # a real tool would block on an HTTP request here; that is fine in a greenlet
        logger.info("get_weather(location={!r}, unit={})", location, unit.value)
        celsius, conditions = made_up_weather(location)
        if unit is Unit.FAHRENHEIT:
            return f"{conditions}, {round(celsius * 9 / 5 + 32)} degrees Fahrenheit in {location}"
        return f"{conditions}, {celsius} degrees Celsius in {location}"


def openai_audio() -> bool:
    """Whether speech goes through the OpenAI-compatible server instead of offline plugins."""
    return os.environ.get("SYNCAGENTS_OPENAI_AUDIO", "").strip().lower() in ("1", "true", "yes")


def prewarm() -> dict[str, Any]:
    # once per process, before the worker registers: jobs start without loading models
    models: dict[str, Any] = {"vad": silero.VAD()}
    if not openai_audio():
        models["stt"] = pocketsphinx.STT()
    return models


def speech_plugins(models: dict[str, Any]) -> tuple[stt.STT, tts.TTS]:
    if openai_audio():
        return openai.STT(), openai.TTS()
    return models.get("stt") or pocketsphinx.STT(), espeak.TTS()


def entrypoint(ctx: JobContext) -> None:
    ctx.connect(auto_subscribe=AutoSubscribe.AUDIO_ONLY)
    participant = ctx.wait_for_participant()
    models = ctx.userdata or prewarm()
    speech_to_text, text_to_speech = speech_plugins(models)
    # base_url and api_key come from OPENAI_BASE_URL / OPENAI_API_KEY
    model = openai.LLM(model=os.environ.get("OPENAI_MODEL", "gpt-4o-mini"))
    ctx.add_shutdown_callback(model.close)
    assistant = VoiceAssistant(
        vad=models["vad"],
        stt=speech_to_text,
        llm=model,
        tts=text_to_speech,
        chat_ctx=llm.ChatContext().append(role="system", text=SYSTEM_PROMPT),
        fnc_ctx=WeatherFunctions(),
    )

    @assistant.on("function_calls_finished")
    def _log_calls(called: list[llm.CalledFunction]) -> None:
        for c in called:
            outcome = f"error {c.exception}" if c.exception is not None else repr(c.result)
            logger.debug("tool {} -> {}", c.call_info.name, outcome)

    assistant.start(ctx.room, participant)
    assistant.say("Hi! Ask me about the weather anywhere.")


opts = WorkerOptions(entrypoint_fnc=entrypoint, prewarm_fnc=prewarm)

if __name__ == "__main__":
    from syncagents import cli

    cli.run_app(opts)
