"""``converse``: an agent test in three lines, on the machinery of ``syncagents console``.

    conversation = converse(entrypoint, inputs=["lights.wav", "and the heating?"])
    assert "lights" in conversation.turns[0].agent_text
    assert "heating" in conversation.turns[1].agent_text

The entrypoint runs as a job in a :class:`LocalRoom` (no server); the user says each input in
order, each once the agent answered the one before and was quiet for ``idle_timeout``.

(The module is not named ``converse``: importing a submodule sets the package attribute of
its name, which would then be the module instead of the function.)
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO, Union

from ..console import ConsoleResult, Turn, UserAudio, load_audio, run_console
from ..console.feeder import AUDIO_SUFFIXES
from ..job import JobContext, JobResult

__all__ = ["Conversation", "Turn", "converse"]

Input = Union[str, "os.PathLike[str]", UserAudio]


@dataclass
class Conversation:
    """What :func:`converse` saw.

    ``turns``: one :class:`Turn` per input (``user_text``, ``agent_text``, ``latency``);
    ``greeting``: what the agent said before the first input; ``transcript``: every
    ``(who, text)`` line in order; ``job``: how the agent's job ended.
    """

    turns: list[Turn]
    greeting: str = ""
    transcript: list[tuple[str, str]] = field(default_factory=list)
    job: JobResult | None = None

    @property
    def user_text(self) -> str:
        """Everything the user said (as the agent heard it) and wrote, in order."""
        return " ".join(text for who, text in self.transcript if who == "user")

    @property
    def agent_text(self) -> str:
        """Everything the agent said, the greeting included, in order."""
        return " ".join(text for who, text in self.transcript if who == "agent")


def _is_audio(item: Input) -> bool:
    if isinstance(item, (UserAudio, os.PathLike)):
        return True
    return item.lower().endswith(AUDIO_SUFFIXES) or os.path.isfile(item)


def converse(
    entrypoint: Callable[[JobContext], Any],
    inputs: Sequence[Input],
    *,
    prewarm: Callable[[], Any] | None = None,
    timeout: float | None = 120.0,
    idle_timeout: float = 2.0,
    output_path: str | None = None,
    out: TextIO | None = None,
) -> Conversation:
    """Run ``entrypoint`` in a local room, the user saying ``inputs`` in order, and return
    the :class:`Conversation`.

    An input is audio when it is a ``pathlib.Path`` (any format PyAV reads), a
    ``console.UserAudio``, or a str that names an existing file or ends in an audio suffix
    (``.wav``, ``.mp3``, ``.ogg``, ``.flac``...); any other str is a chat message. Each input
    goes out once the agent answered the previous one and was quiet for ``idle_timeout``
    seconds. ``prewarm()``'s result is the job's ``userdata``; ``output_path`` records the
    agent's audio to a WAV; ``out`` gets the conversation as the console prints it.

    Raises ``TimeoutError`` when the conversation is not over after ``timeout`` seconds,
    ``RuntimeError`` when the agent's job failed, ``ValueError`` for an unreadable input.
    """
    items: list[UserAudio | str] = []
    for item in inputs:
        if isinstance(item, UserAudio):
            items.append(item)
        elif _is_audio(item):
            items.append(load_audio(item))
        else:
            items.append(str(item))
    result: ConsoleResult = run_console(
        entrypoint,
        prewarm=prewarm,
        inputs=items,
        output_path=output_path,
        idle_s=idle_timeout,
        max_duration=timeout,
        out=out if out is not None else io.StringIO(),
    )
    conversation = Conversation(result.turns, result.greeting, result.transcript, result.job)
    if result.reason == "timeout":
        said = "; ".join(f"{who}: {text}" for who, text in result.transcript) or "nothing said"
        raise TimeoutError(
            f"converse: the conversation was not over after {timeout} s "
            f"({len(result.turns)} of {len(items)} inputs started; {said})"
        )
    if result.job is not None and result.job.failed:
        raise RuntimeError(f"converse: the agent failed: {result.job.error}")
    return conversation
