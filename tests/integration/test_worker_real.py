"""The path a user's agent takes in production, on a real livekit-server over real WebRTC.

The agent is the offline echo example run by the ``syncagents`` CLI; the user is livekit's own
asyncio SDK in another process (``user_client.py``). The user publishes espeak speech, records
what the agent publishes, and pocketsphinx listens to the recording.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    UserClient,
    WorkerProcess,
    room_name,
    server_api,
    spoken_wav,
    transcribe,
)

from syncagents.testing.livekit_server import LiveKitServer

ECHO = "examples/echo_agent.py"
QUESTION = "Hello there. What is the weather like today?"
REPLY_TIMEOUT = 90.0  # recognise + answer on a loaded 2-core machine (pocketsphinx is slow)


def _overlap(reference: str, heard: str) -> float:
    ref = {w.strip(".,?!").lower() for w in reference.split()}
    got = {w.strip(".,?!").lower() for w in heard.split()}
    return len(ref & got) / max(len(ref), 1)


def _agent_reply(user: UserClient, via: str = "legacy", timeout: float = REPLY_TIMEOUT) -> str:
    """The text of the agent's first final "You said ..." transcription, as the user got it."""
    ev = user.wait_for(
        "transcription",
        lambda e: e["via"] == via and e["final"] and e["text"].startswith("You said"),
        timeout=timeout,
    )
    return str(ev["text"])


def _wait_for_agent(user: UserClient, timeout: float = 60.0) -> dict[str, Any]:
    """The agent joined the user's room and its audio track reached the user."""
    joined = user.wait_for("participant_connected", lambda e: e["identity"].startswith("agent-"),
                           timeout=timeout)
    user.wait_for("track_subscribed", lambda e: e["kind"] == "audio", timeout=timeout)
    return joined


@pytest.fixture
def echo_worker(worker_factory: Callable[..., WorkerProcess]) -> WorkerProcess:
    worker = worker_factory(ECHO)
    worker.wait_log("registered worker", timeout=90)
    return worker


def test_registration_dispatch_and_media_both_ways(
    echo_worker: WorkerProcess, user_factory: Callable[..., UserClient], tmp_path: Path
) -> None:
    reg = echo_worker.wait_log("registered worker")
    assert "server 1.13.5" in reg["message"]  # the real server answered the real protocol

    room = room_name("echo")
    user = user_factory(room)  # a new room: automatic dispatch to the unnamed worker
    joined = _wait_for_agent(user)
    assert joined["kind"] == 4  # ParticipantInfo.Kind.AGENT: the server made it an agent
    assert joined["attributes"].get("lk.agent_name", "") == ""
    echo_worker.wait_log("assigned (room '" + room)

    recording = tmp_path / "agent.wav"
    user.send("record", path=str(recording))
    user.wait_for("recording")
    user.send("publish_wav", path=str(spoken_wav(tmp_path / "question.wav", QUESTION)))
    user.wait_for("spoken", timeout=60)

    reply = _agent_reply(user)
    # the agent heard the user (echo LLM repeats the transcript it got over WebRTC)
    assert _overlap(QUESTION, reply) >= 0.3, reply
    # and its own transcription of the user reached the user, attributed to the user
    heard = user.wait_for("transcription", lambda e: e["identity"] == "user" and e["final"])
    assert _overlap(QUESTION, heard["text"]) >= 0.3, heard
    # livekit 1.x clients read transcriptions from text streams on lk.transcription
    streamed = _agent_reply(user, via="text_stream", timeout=30)
    assert streamed.strip() == reply.strip()

    user.send("stop_record")
    rec = user.wait_for("recorded", timeout=30)
    assert rec["seconds"] > 2.0
    # what the user's speaker would have played: pocketsphinx hears the answer in it
    in_audio = transcribe(recording)
    assert _overlap("you said " + QUESTION, in_audio) >= 0.25, in_audio


def test_chat_message_becomes_a_turn(
    echo_worker: WorkerProcess, user_factory: Callable[..., UserClient]
) -> None:
    user = user_factory(room_name("chat"))
    _wait_for_agent(user)
    user.wait_for("transcription", lambda e: e["final"] and "listening" in e["text"])
    user.send("chat", text="how are you today")
    reply = _agent_reply(user, timeout=60)
    assert reply.rstrip(". ") == "You said: how are you today"


def test_explicit_dispatch_by_agent_name(
    livekit_server: LiveKitServer,
    worker_factory: Callable[..., WorkerProcess],
    user_factory: Callable[..., UserClient],
) -> None:
    worker = worker_factory(ECHO, "--agent-name", "named-echo")
    worker.wait_log("registered worker", timeout=90)
    room = room_name("named")
    user = user_factory(room)  # a named worker gets no automatic dispatch for this room
    # (the server records the room's automatic dispatch, with an empty agent name, for the
    # unnamed workers it has: none here)
    named = [d for d in server_api(livekit_server, "list_dispatch", room) if d.get("agentName")]
    assert named == []

    dispatch = server_api(livekit_server, "create_dispatch", room, "named-echo", "meta-1")
    assert dispatch["agentName"] == "named-echo"
    joined = _wait_for_agent(user)
    assert joined["attributes"]["lk.agent_name"] == "named-echo"
    worker.wait_log("assigned (room '" + room)
    listed = [d for d in server_api(livekit_server, "list_dispatch", room) if d.get("agentName")]
    assert [d["agentName"] for d in listed] == ["named-echo"]  # only the explicit one
    assert dispatch["id"] == listed[0]["id"]
    # (the dispatch's job list fills in asynchronously on the server: not compared here)


def test_connect_command_runs_one_job_for_a_room(
    worker_factory: Callable[..., WorkerProcess], user_factory: Callable[..., UserClient]
) -> None:
    room = room_name("connect")
    worker = worker_factory(ECHO, "--room", room, command="connect")
    worker.wait_log("registered worker", timeout=90)
    worker.wait_log("assigned (room '" + room, timeout=60)
    user = user_factory(room)
    _wait_for_agent(user)
    user.wait_for("transcription", lambda e: e["final"] and "listening" in e["text"])


@pytest.mark.parametrize("published", [True, False], ids=["publisher", "listener"])
def test_user_leaving_ends_the_job_with_success(
    echo_worker: WorkerProcess,
    user_factory: Callable[..., UserClient],
    published: bool,
    tmp_path: Path,
) -> None:
    room = room_name("leave")
    user = user_factory(room)
    _wait_for_agent(user)
    assigned = echo_worker.wait_log("assigned (room '" + room)
    job_id = assigned["job_id"]
    if published:  # the server tells others at once when a publisher leaves
        user.send("publish_wav", path=str(spoken_wav(tmp_path / "hi.wav", "Goodbye now.")))
        user.wait_for("spoken", timeout=60)
    # else only in its next 3-second batch of participant updates: still before the room's
    # departure timeout (20 s) would close the room under the agent
    user.leave()
    ended = echo_worker.wait_log(f"job {job_id} ended", timeout=60)
    assert "(JS_SUCCESS): room empty" in ended["message"], ended


def test_room_deleted_through_the_api_ends_the_job(
    livekit_server: LiveKitServer,
    echo_worker: WorkerProcess,
    user_factory: Callable[..., UserClient],
) -> None:
    room = room_name("deleted")
    user = user_factory(room)
    _wait_for_agent(user)
    job_id = echo_worker.wait_log("assigned (room '" + room)["job_id"]
    server_api(livekit_server, "delete_room", room)
    user.wait_for("disconnected", timeout=30)
    ended = echo_worker.wait_log(f"job {job_id} ended", timeout=60)
    assert "(JS_SUCCESS)" in ended["message"], ended


def test_sigterm_with_a_live_room_drains_and_exits_0(
    echo_worker: WorkerProcess, user_factory: Callable[..., UserClient]
) -> None:
    room = room_name("drain")
    user = user_factory(room)
    _wait_for_agent(user)
    job_id = echo_worker.wait_log("assigned (room '" + room)["job_id"]
    echo_worker.proc.send_signal(signal.SIGTERM)
    echo_worker.wait_log("draining", timeout=30)
    # the job keeps running while draining: the agent still answers the user
    user.send("chat", text="are you still there")
    assert _agent_reply(user, timeout=60).startswith("You said: are you still there")
    user.leave()
    ended = echo_worker.wait_log(f"job {job_id} ended", timeout=60)
    assert "(JS_SUCCESS)" in ended["message"]
    assert echo_worker.wait_exit(timeout=30) == 0


@pytest.mark.timeout(600)
def test_worker_registers_again_after_a_server_restart() -> None:
    from conftest import UserClient as Client

    with LiveKitServer() as server:
        worker = WorkerProcess(server, ECHO)
        users: list[Client] = []
        try:
            worker.wait_log("registered worker", timeout=90)
            first = Client(server, room_name("before"))
            users.append(first)
            first.wait_for("connected")
            _wait_for_agent(first)
            job_id = worker.wait_log("assigned (room '" + first.room)["job_id"]

            server.restart()  # mid-job: every connection and room is gone
            worker.wait_log("lost the connection", timeout=60)
            worker.wait_log(f"job {job_id} ended", timeout=90)
            worker.wait_log("registered worker", timeout=90, n=2)

            second = Client(server, room_name("after"))
            users.append(second)
            second.wait_for("connected")
            _wait_for_agent(second)
            second.send("chat", text="back again")
            assert _agent_reply(second, timeout=60).startswith("You said: back again")
        finally:
            for u in users:
                u.close()
            worker.stop()


@pytest.mark.timeout(600)
def test_ten_rooms_at_once_in_one_worker(
    echo_worker: WorkerProcess, user_factory: Callable[..., UserClient], tmp_path: Path
) -> None:
    question = spoken_wav(tmp_path / "question.wav", QUESTION)
    users = [user_factory(room_name(f"ten{i}"), f"user{i}") for i in range(10)]
    for user in users:
        _wait_for_agent(user, timeout=90)
    for user in users:
        user.send("publish_wav", path=str(question))
    for user in users:
        ev = user.wait_for(
            "transcription",
            lambda e: e["via"] == "legacy" and e["final"] and e["text"].startswith("You said"),
            timeout=180,
        )
        # heard: the reply repeats words of the question (ten first utterances decoded at
        # once on fresh pocketsphinx decoders are rough, so one word is the bar here)
        assert _overlap(QUESTION, ev["text"]) > 0, (user.room, ev["text"])
    echo_worker.wait_log("assigned (room 'ten", n=10)  # ten jobs, one worker process
