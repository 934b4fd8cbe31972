"""A local OpenAI-compatible HTTP server for tests (127.0.0.1 only).

Real HTTP/1.1 on a gevent ``StreamServer``: keep-alive, chunked transfer encoding for every
streamed body, server-sent events framed as OpenAI frames them (``data: {...}\\n\\n`` and a
final ``data: [DONE]``), multipart uploads parsed. Tests script the answers and inject faults:

    with OpenAIServer() as server:
        server.chat.append(ChatScript(text="Hi!", tool_calls=[ToolCall("f", '{"x": 1}')]))
        server.faults.append(Fault(status=500))   # the next request fails once
        llm = openai.LLM(base_url=server.url, api_key=server.api_key, retry_backoff=0.01)

Endpoints: ``POST /v1/chat/completions`` (streamed or not), ``POST /v1/audio/transcriptions``
(answers ``transcript``; the uploaded WAV is decoded into ``uploads``), ``POST
/v1/audio/speech`` (a sine tone as ``pcm`` — 24 kHz int16 — or ``mp3`` encoded with PyAV).
A wrong key gets 401 with the key echoed back (as some servers do) so tests can check that
clients redact it; ``model="missing-model"`` gets 404.

The server is strict like OpenAI's: a chat request whose assistant tool calls carry arguments
that are not a JSON object, a tool result without its call, malformed content parts or images,
a non-strict schema marked ``strict``, or ``tool_choice``/``parallel_tool_calls`` that do not
fit the tools gets 400 (``invalid_request_error``) naming the field; ``rejected`` lists them.
"""

from __future__ import annotations

import base64
import binascii
import collections
import email.parser
import email.policy
import io
import json
import secrets
import time
import wave
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any, Literal

import av
import gevent
import numpy as np
from gevent.event import Event
from gevent.server import StreamServer

__all__ = [
    "ChatScript",
    "Fault",
    "OpenAIServer",
    "RecordedRequest",
    "ToolCall",
    "Upload",
    "check_chat_request",
]

PCM_RATE = 24000


@dataclass
class ToolCall:
    name: str
    arguments: str  # JSON text, streamed in pieces
    id: str = ""


@dataclass
class ChatScript:
    """One scripted chat answer."""

    text: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    piece_size: int = 3
    """Characters per content delta / per piece of tool arguments."""
    write_size: int | None = None
    """Write the SSE byte stream in HTTP chunks of this many bytes, so events, lines and even
    UTF-8 sequences straddle chunk boundaries (None: one HTTP chunk per event)."""
    delay: float = 0.0
    """Seconds between two writes (a slow model)."""
    crlf: bool = False
    """End SSE lines with CRLF instead of LF."""
    omit_index: bool = False
    """Send each tool call whole and without ``index`` (as some local servers do)."""
    done: bool = True
    """Send the final ``data: [DONE]``."""
    finish: bool = True
    """Send a chunk with ``finish_reason``."""
    error_after: int | None = None
    """Send an error event (``data: {"error": ...}``) after this many events."""
    comments: bool = True
    """Interleave SSE comments (keep-alives)."""
    gate: Event | None = None
    """Wait for this event before the write number ``gate_after`` (0-based), so a test can
    prove it got the first pieces while the server was still holding back the rest."""
    gate_after: int = 3


FaultKind = Literal["status", "reset", "stall", "cut"]


@dataclass
class Fault:
    """A failure applied to the next request (whose path ends with ``path``, if given).

    ``status``: answer ``status`` with an OpenAI error body (and ``Retry-After`` if set);
    ``reset``: close the connection without answering; ``stall``: wait ``seconds`` before
    answering normally; ``cut``: start a 200 streamed answer, then close the connection after
    ``after_events`` events (or bytes, for audio) without ending the chunked body.
    """

    kind: FaultKind = "status"
    status: int = 500
    message: str = "The server had an error while processing your request."
    retry_after: float | None = None
    seconds: float = 0.0
    after_events: int = 2
    path: str | None = None


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    json: Any = None


@dataclass
class Upload:
    """A transcription request's form fields and decoded WAV."""

    fields: dict[str, str]
    filename: str
    content_type: str
    sample_rate: int
    num_channels: int
    samples: np.ndarray


class _Cut(Exception):
    """Raised inside a handler to drop the connection mid-body."""


class OpenAIServer:
    def __init__(self, api_key: str | None = None, host: str = "127.0.0.1") -> None:
        self.api_key = api_key or "sk-test-" + secrets.token_hex(16)
        self.requests: list[RecordedRequest] = []
        self.chat: collections.deque[ChatScript] = collections.deque()
        self.faults: collections.deque[Fault] = collections.deque()
        self.uploads: list[Upload] = []
        self.transcript = "hello from the test server"
        self.speech_seconds = 1.0
        self.speech_freq = 440.0
        self.audio_write_size = 1001  # odd: PCM samples straddle chunk boundaries
        self.connections = 0
        self.strict = True
        """Reject malformed chat requests with 400, as OpenAI does (see the module docstring)."""
        self.rejected: list[str] = []
        self._server = StreamServer((host, 0), self._handle)

    # -- life cycle ----------------------------------------------------------------------------

    def start(self) -> OpenAIServer:
        self._server.start()
        return self

    def close(self) -> None:
        self._server.stop(timeout=2)

    def __enter__(self) -> OpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def port(self) -> int:
        return int(self._server.server_port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def requests_to(self, suffix: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.endswith(suffix)]

    def _handle(self, sock: Any, address: Any) -> None:
        self.connections += 1
        try:
            _Handler(sock, address, self)  # type: ignore[arg-type]  # any object will do
        except (_Cut, OSError):
            pass

    def _take_fault(self, path: str) -> Fault | None:
        for fault in list(self.faults):
            if fault.path is None or path.endswith(fault.path):
                self.faults.remove(fault)
                return fault
        return None

    # -- answers -------------------------------------------------------------------------------

    def sine_pcm(self) -> bytes:
        n = int(self.speech_seconds * PCM_RATE)
        t = np.arange(n) / PCM_RATE
        return (0.3 * 32767 * np.sin(2 * np.pi * self.speech_freq * t)).astype("<i2").tobytes()

    def sine_mp3(self) -> bytes:
        """The same tone as MP3, encoded with PyAV (libmp3lame; starts with an ID3 tag)."""
        pcm = np.frombuffer(self.sine_pcm(), dtype="<i2").astype(np.int16)
        out = io.BytesIO()
        with av.open(out, "w", format="mp3") as container:
            stream = container.add_stream("libmp3lame", rate=PCM_RATE, layout="mono")
            frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
            frame.sample_rate = PCM_RATE
            for packet in stream.encode(frame):
                container.mux(packet)
            for packet in stream.encode(None):
                container.mux(packet)
        return out.getvalue()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: OpenAIServer  # type: ignore[assignment]

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: pytest shows failures, not access logs

    # -- plumbing ------------------------------------------------------------------------------

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parsed: Any = None
        if (self.headers.get("Content-Type") or "").startswith("application/json"):
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = None
        srv = self.server
        srv.requests.append(
            RecordedRequest("POST", self.path, dict(self.headers.items()), body, parsed)
        )
        if self.headers.get("Authorization") != f"Bearer {srv.api_key}":
            given = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
            self._error(401, f"Incorrect API key provided: {given}.", "invalid_api_key")
            return
        fault = srv._take_fault(self.path)
        if fault is not None and fault.kind == "status":
            headers = {}
            if fault.retry_after is not None:
                headers["Retry-After"] = f"{fault.retry_after:g}"
            self._error(fault.status, fault.message, "server_error", headers)
            return
        if fault is not None and fault.kind == "reset":
            self.close_connection = True
            raise _Cut()
        if fault is not None and fault.kind == "stall":
            gevent.sleep(fault.seconds)  # a slow server, as the client sees it
        cut = fault if fault is not None and fault.kind == "cut" else None
        if isinstance(parsed, dict) and parsed.get("model") == "missing-model":
            self._error(404, "The model `missing-model` does not exist.", "model_not_found")
            return
        if self.path.endswith("/chat/completions"):
            problem = check_chat_request(parsed) if srv.strict else None
            if problem is not None:
                srv.rejected.append(problem)
                self._error(400, problem, "invalid_request_error")
                return
            self._chat(parsed, cut)
        elif self.path.endswith("/audio/transcriptions"):
            self._transcription(body)
        elif self.path.endswith("/audio/speech"):
            self._speech(parsed, cut)
        else:
            self._error(404, f"Unknown path {self.path}", "not_found")

    def _error(
        self, status: int, message: str, code: str, headers: dict[str, str] | None = None
    ) -> None:
        payload = json.dumps(
            {"error": {"message": message, "type": "invalid_request_error", "code": code}}
        ).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(payload)

    def _json(self, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _start_chunked(self, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()

    def _chunk(self, data: bytes) -> None:
        if data:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def _end_chunked(self) -> None:
        self.wfile.write(b"0\r\n\r\n")

    def _cut(self) -> None:
        self.close_connection = True
        raise _Cut()

    # -- chat ----------------------------------------------------------------------------------

    def _chat(self, body: Any, cut: Fault | None) -> None:
        srv = self.server
        body = body if isinstance(body, dict) else {}
        script = srv.chat.popleft() if srv.chat else _echo(body)
        model = body.get("model", "")
        cid = "chatcmpl-" + secrets.token_hex(8)
        if not body.get("stream"):
            self._json(_whole_completion(cid, model, script))
            return
        events = _chat_events(cid, model, script, body)
        eol = "\r\n" if script.crlf else "\n"
        frames: list[bytes] = []
        for n, event in enumerate(events):
            if script.comments and n == 1:
                frames.append(f": keep-alive{eol}{eol}".encode())
            frames.append(f"data: {event}{eol}{eol}".encode())
        if script.error_after is not None:
            err = json.dumps({"error": {"message": "the model crashed", "code": 500}})
            frames = [*frames[: script.error_after], f"data: {err}{eol}{eol}".encode()]
        elif script.done:
            frames.append(f"data: [DONE]{eol}{eol}".encode())

        self._start_chunked("text/event-stream")
        if script.write_size:
            stream = b"".join(frames)
            size = script.write_size
            frames = [stream[i : i + size] for i in range(0, len(stream), size)]
        for n, frame in enumerate(frames):
            if cut is not None and n >= cut.after_events:
                self._cut()
            if script.delay and n:
                gevent.sleep(script.delay)
            if script.gate is not None and n == script.gate_after:
                script.gate.wait(timeout=10)
            self._chunk(frame)
        self._end_chunked()

    # -- audio ---------------------------------------------------------------------------------

    def _transcription(self, body: bytes) -> None:
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + self.headers["Content-Type"].encode() + b"\r\n\r\n" + body
        )
        fields: dict[str, str] = {}
        upload: tuple[str, str, bytes] | None = None
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            filename = part.get_filename()
            payload = part.get_payload(decode=True)
            if not isinstance(payload, bytes):
                continue
            if filename:
                upload = (filename, part.get_content_type(), payload)
            elif name:
                fields[str(name)] = payload.decode()
        if upload is None:
            self._error(400, "no file uploaded", "invalid_file")
            return
        with wave.open(io.BytesIO(upload[2])) as w:
            samples = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.int16)
            self.server.uploads.append(
                Upload(fields, upload[0], upload[1], w.getframerate(), w.getnchannels(), samples)
            )
        self._json({"text": self.server.transcript})

    def _speech(self, body: Any, cut: Fault | None) -> None:
        body = body if isinstance(body, dict) else {}
        fmt = body.get("response_format", "mp3")
        if fmt == "pcm":
            data, content_type = self.server.sine_pcm(), "audio/pcm"
        elif fmt == "mp3":
            data, content_type = self.server.sine_mp3(), "audio/mpeg"
        else:
            self._error(400, f"unsupported response_format {fmt}", "invalid_value")
            return
        self._start_chunked(content_type)
        size = self.server.audio_write_size
        for n, start in enumerate(range(0, len(data), size)):
            if cut is not None and n >= cut.after_events:
                self._cut()
            self._chunk(data[start : start + size])
        self._end_chunked()


_ROLES = ("system", "user", "assistant", "tool", "developer")


def _check_arguments(where: str, arguments: Any) -> str | None:
    if not isinstance(arguments, str):
        return f"Invalid '{where}': expected a string"
    try:
        value = json.loads(arguments, parse_constant=_no_constant)
    except ValueError as e:
        return f"Invalid '{where}': not valid JSON ({e}): {arguments!r}"
    if not isinstance(value, dict):
        return f"Invalid '{where}': not a JSON object: {arguments!r}"
    return None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _check_image(where: str, part: dict[str, Any]) -> str | None:
    image = part.get("image_url")
    if not isinstance(image, dict) or not isinstance(image.get("url"), str):
        return f"Invalid '{where}.image_url': expected an object with a url"
    url = image["url"]
    if image.get("detail", "auto") not in ("auto", "low", "high"):
        return f"Invalid '{where}.image_url.detail': {image.get('detail')!r}"
    if url.startswith(("http://", "https://")):
        return None
    head, _, data = url.partition(",")
    if not (head.startswith("data:image/") and head.endswith(";base64")):
        return f"Invalid '{where}.image_url.url': expected an http(s) or base64 data URL"
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return f"Invalid '{where}.image_url.url': bad base64"
    signatures = {"image/png": b"\x89PNG", "image/jpeg": b"\xff\xd8\xff", "image/gif": b"GIF8",
                  "image/webp": b"RIFF"}
    mime = head[5:-7]
    if mime not in signatures or not raw.startswith(signatures[mime]):
        return f"Invalid '{where}.image_url.url': the data is not {mime}"
    return None


def _check_content(where: str, role: str, content: Any) -> str | None:
    if content is None or isinstance(content, str):
        return None
    if not isinstance(content, list):
        return f"Invalid '{where}': expected a string or an array of parts"
    for j, part in enumerate(content):
        pwhere = f"{where}[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            if not isinstance(part.get("text"), str):
                return f"Invalid '{pwhere}.text': expected a string"
        elif kind == "image_url":
            if role != "user":
                return f"Invalid '{pwhere}': image parts are only allowed in user messages"
            problem = _check_image(pwhere, part)
            if problem:
                return problem
        else:
            return f"Invalid '{pwhere}.type': {kind!r}"
    return None


def _check_strict_schema(where: str, schema: Any) -> str | None:
    if isinstance(schema, list):
        for n, sub in enumerate(schema):
            problem = _check_strict_schema(f"{where}[{n}]", sub)
            if problem:
                return problem
        return None
    if not isinstance(schema, dict):
        return None
    if "default" in schema:
        return f"Invalid schema at '{where}': 'default' is not permitted in strict mode"
    props = schema.get("properties")
    if schema.get("type") == "object" or isinstance(props, dict):
        if schema.get("additionalProperties") is not False:
            return f"Invalid schema at '{where}': 'additionalProperties' must be false"
        if sorted(schema.get("required") or []) != sorted(props or {}):
            return f"Invalid schema at '{where}': 'required' must list every property"
    for key, sub in schema.items():
        if key in ("properties", "$defs", "definitions") and isinstance(sub, dict):
            for name, sub_schema in sub.items():
                problem = _check_strict_schema(f"{where}.{key}.{name}", sub_schema)
                if problem:
                    return problem
        elif key in ("items", "anyOf", "oneOf", "allOf", "prefixItems"):
            problem = _check_strict_schema(f"{where}.{key}", sub)
            if problem:
                return problem
    return None


def check_chat_request(body: Any) -> str | None:
    """What OpenAI would reject in a chat request (None if nothing): see the module docstring."""
    if not isinstance(body, dict):
        return "the body must be a JSON object"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "Invalid 'messages': expected a non-empty array"
    open_calls: set[str] = set()
    for i, msg in enumerate(messages):
        where = f"messages[{i}]"
        role = msg.get("role") if isinstance(msg, dict) else None
        if role not in _ROLES:
            return f"Invalid '{where}.role': {role!r}"
        problem = _check_content(f"{where}.content", role, msg.get("content"))
        if problem:
            return problem
        for j, call in enumerate(msg.get("tool_calls") or []):
            cwhere = f"{where}.tool_calls[{j}]"
            if role != "assistant":
                return f"Invalid '{cwhere}': only assistant messages have tool calls"
            fn = call.get("function") if isinstance(call, dict) else None
            if not isinstance(fn, dict) or not fn.get("name") or not call.get("id"):
                return f"Invalid '{cwhere}': needs an id and a function name"
            problem = _check_arguments(f"{cwhere}.function.arguments", fn.get("arguments"))
            if problem:
                return problem
            open_calls.add(call["id"])
        if role == "tool":
            if msg.get("tool_call_id") not in open_calls:
                return (f"Invalid '{where}': a tool message must answer a preceding tool call "
                        f"(tool_call_id {msg.get('tool_call_id')!r})")
            if not isinstance(msg.get("content"), (str, list)):
                return f"Invalid '{where}.content': a tool message needs content"
    tools = body.get("tools")
    names: list[str] = []
    if tools is not None:
        if not isinstance(tools, list) or not tools:
            return "Invalid 'tools': expected a non-empty array"
        for k, tool in enumerate(tools):
            fn = tool.get("function") if isinstance(tool, dict) else None
            if tool.get("type") != "function" or not isinstance(fn, dict) or not fn.get("name"):
                return f"Invalid 'tools[{k}]': expected a function with a name"
            params = fn.get("parameters", {"type": "object"})
            if not isinstance(params, dict) or params.get("type") != "object":
                return f"Invalid 'tools[{k}].function.parameters': must be an object schema"
            if fn.get("strict"):
                problem = _check_strict_schema(f"tools[{k}].function.parameters", params)
                if problem:
                    return problem
            names.append(fn["name"])
    if "tool_choice" in body:
        choice = body["tool_choice"]
        if not tools:
            return "Invalid 'tool_choice': only allowed when 'tools' are specified"
        if isinstance(choice, dict):
            fn = choice.get("function")
            if choice.get("type") != "function" or not isinstance(fn, dict):
                return f"Invalid 'tool_choice': {choice!r}"
            if fn.get("name") not in names:
                return f"Invalid 'tool_choice': no tool named {fn.get('name')!r}"
        elif choice not in ("auto", "required", "none"):
            return f"Invalid 'tool_choice': {choice!r}"
    if "parallel_tool_calls" in body:
        if not tools:
            return "Invalid 'parallel_tool_calls': only allowed when 'tools' are specified"
        if not isinstance(body["parallel_tool_calls"], bool):
            return "Invalid 'parallel_tool_calls': expected a boolean"
    return None


def _echo(body: dict[str, Any]) -> ChatScript:
    users = [m for m in body.get("messages", []) if m.get("role") == "user"]
    last = users[-1].get("content", "") if users else ""
    return ChatScript(text=f"You said: {last}")


def _pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), max(1, size))]


def _chunk_event(cid: str, model: str, delta: dict[str, Any], finish: str | None = None) -> str:
    return json.dumps(
        {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
    )


def _chat_events(cid: str, model: str, script: ChatScript, body: dict[str, Any]) -> list[str]:
    events = [_chunk_event(cid, model, {"role": "assistant", "content": ""})]
    for piece in _pieces(script.text, script.piece_size):
        events.append(_chunk_event(cid, model, {"content": piece}))
    for index, call in enumerate(script.tool_calls):
        call_id = call.id or f"call_{secrets.token_hex(6)}"
        if script.omit_index:
            whole = {"id": call_id, "type": "function",
                     "function": {"name": call.name, "arguments": call.arguments}}
            events.append(_chunk_event(cid, model, {"tool_calls": [whole]}))
            continue
        head = {"index": index, "id": call_id, "type": "function",
                "function": {"name": call.name, "arguments": ""}}
        events.append(_chunk_event(cid, model, {"tool_calls": [head]}))
        for piece in _pieces(call.arguments, script.piece_size):
            more = {"index": index, "function": {"arguments": piece}}
            events.append(_chunk_event(cid, model, {"tool_calls": [more]}))
    if script.finish:
        reason = "tool_calls" if script.tool_calls else "stop"
        events.append(_chunk_event(cid, model, {}, reason))
    if (body.get("stream_options") or {}).get("include_usage"):
        completion = len(script.text.split()) + len(script.tool_calls)
        usage = {"prompt_tokens": 11, "completion_tokens": completion,
                 "total_tokens": 11 + completion}
        events.append(json.dumps({"id": cid, "object": "chat.completion.chunk",
                                  "model": model, "choices": [], "usage": usage}))
    return events


def _whole_completion(cid: str, model: str, script: ChatScript) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": script.text or None}
    if script.tool_calls:
        message["tool_calls"] = [
            {"id": c.id or f"call_{n}", "type": "function",
             "function": {"name": c.name, "arguments": c.arguments}}
            for n, c in enumerate(script.tool_calls)
        ]
    return {"id": cid, "object": "chat.completion", "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}]}
