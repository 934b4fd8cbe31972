"""``examples/agent_session.py`` runs in the console with its offline plugins: Ada greets,
looks the weather up with a tool, hands over to Echo, and Echo stays silent on one-word
turns."""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType

import pytest

from syncagents import WorkerOptions
from syncagents.cli.app_loader import load_app
from syncagents.console import run_console

pytestmark = pytest.mark.timeout(120)

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load() -> tuple[WorkerOptions, ModuleType]:
    opts = load_app(str(EXAMPLES / "agent_session.py"))
    assert isinstance(opts, WorkerOptions) and opts.entrypoint_fnc is not None
    return opts, sys.modules[opts.entrypoint_fnc.__module__]


def test_tools_of_the_example_are_described_from_their_docstrings() -> None:
    _, example = load()
    ada = example.Ada()
    assert ada.fnc_ctx is not None
    schema = ada.fnc_ctx.ai_functions["get_weather"].json_schema()["function"]
    assert schema["description"] == "Get the current weather."
    assert schema["parameters"]["properties"]["location"]["description"].startswith("The place")
    assert sorted(ada.fnc_ctx.ai_functions) == ["get_weather", "transfer_to_echo"]
    assert example.Echo().fnc_ctx is None


def test_chat_conversation_with_a_tool_a_handoff_and_a_silent_turn() -> None:
    opts, example = load()
    assert opts.entrypoint_fnc is not None
    result = run_console(
        opts.entrypoint_fnc,
        prewarm=opts.prewarm_fnc,
        texts=["What is the weather in Paris?", "hi", "how are you today"],
        idle_s=1.0,
        max_duration=90,
    )
    assert result.exit_code == 0
    celsius, conditions = example.made_up_weather("Paris")
    assert result.transcript == [
        ("agent", "Hello, I am Ada. Ask me about the weather."),
        ("user", "What is the weather in Paris?"),
        (
            "agent",
            f"Let me check. It is {conditions} and {celsius} degrees in Paris. "
            "Echo will take it from here.",
        ),
        ("agent", "Hello, I am Echo. Say something and I will repeat it."),
        ("user", "hi"),  # one word: Echo's on_user_turn_completed keeps it silent
        ("user", "how are you today"),
        ("agent", "You said: how are you today."),
    ]


def test_spoken_conversation_from_the_sample_file(tmp_path: Path) -> None:
    opts, _ = load()
    assert opts.entrypoint_fnc is not None
    out = tmp_path / "reply.wav"
    result = run_console(
        opts.entrypoint_fnc,
        prewarm=opts.prewarm_fnc,
        input_path=str(EXAMPLES / "hello.wav"),
        output_path=str(out),
        max_duration=90,
    )
    assert result.exit_code == 0
    agent = [text for who, text in result.transcript if who == "agent"]
    users = [text for who, text in result.transcript if who == "user"]
    # pocketsphinx hears the sample imperfectly: the words do not matter, the turns do. (On a
    # loaded machine recognition lags and the user's last words may still cut Ada's answer
    # short, so only its start is checked; the handoff happens either way.)
    assert users
    assert agent[0] == "Hello, I am Ada. Ask me about the weather."
    assert agent[1].startswith("Let me check.")
    assert "Hello, I am Echo. Say something and I will repeat it." in agent[2:]
    assert out.stat().st_size > 44


def test_the_example_in_converse() -> None:
    from syncagents.testing import converse

    opts, example = load()
    assert opts.entrypoint_fnc is not None
    talk = converse(opts.entrypoint_fnc, inputs=["What is the weather in Paris?"],
                    prewarm=opts.prewarm_fnc, timeout=90)
    celsius, conditions = example.made_up_weather("Paris")
    assert talk.greeting == "Hello, I am Ada. Ask me about the weather."
    assert talk.turns[0].user_text == "What is the weather in Paris?"
    assert f"It is {conditions} and {celsius} degrees in Paris." in talk.turns[0].agent_text
