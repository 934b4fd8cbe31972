"""Tools beyond plain annotations: repaired tool-call JSON, docstring argument descriptions,
pydantic models and Field constraints, raw JSON-schema tools, strict schemas, tool_choice and
parallel_tool_calls, and images in the chat context."""

from __future__ import annotations

import base64
import enum
import io
import json
from collections.abc import Iterator
from typing import Annotated, Any, Literal

import av
import numpy as np
import pytest

from syncagents import llm
from syncagents.testing import FakeLLM, FakeResponse, FakeToolCall

pydantic = pytest.importorskip("pydantic")
from pydantic import BaseModel, Field  # noqa: E402

# -- repairing tool-call arguments -----------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('{"city": "Paris"', {"city": "Paris"}),  # truncated: missing brace
        ('{"city": "Par', {"city": "Par"}),  # truncated inside a string
        ('{"a": {"b": [1, 2', {"a": {"b": [1, 2]}}),  # several levels open
        ('{"city": "Paris", "days": ', {"city": "Paris"}),  # the last value never came
        ('{"city": "Paris", "detailed": tr', {"city": "Paris"}),
        ("{'city': 'Paris', 'note': 'it\\'s'}", {"city": "Paris", "note": "it's"}),
        ("{city: 'Paris', days: 3}", {"city": "Paris", "days": 3}),
        ('{"city": "Paris", "days": 3,}', {"city": "Paris", "days": 3}),
        ('{"tags": ["a", "b",], }', {"tags": ["a", "b"]}),
        ('{"city": "Paris"}<|im_end|>', {"city": "Paris"}),
        ('<tool_call>{"city": "Paris"}</tool_call>', {"city": "Paris"}),
        ('{"city": "Paris<|im_end|>"', {"city": "Paris"}),
        ('```json\n{"city": "Paris"}\n```', {"city": "Paris"}),
        ('```\n{"city": "Paris"}\n```<|eot_id|>', {"city": "Paris"}),
        ('Sure! {"city": "Paris"} Hope this helps.', {"city": "Paris"}),
        ('{"ok": True, "none": None}', {"ok": True, "none": None}),
        ('"{\\"city\\": \\"Paris\\"}"', {"city": "Paris"}),  # encoded twice
        ('{"city": "Paris" "days": 2}', {"city": "Paris", "days": 2}),  # missing comma
        ("{'x': 1.5, 'y': -2, 'z': 1e3}", {"x": 1.5, "y": -2, "z": 1000.0}),
    ],
)
def test_malformed_arguments_are_repaired(raw: str, expected: dict[str, Any]) -> None:
    value, repaired = llm.parse_tool_arguments(raw)
    assert value == expected
    assert repaired


@pytest.mark.parametrize("raw", ['{"city": "Paris"}', "", "  "])
def test_valid_arguments_are_not_marked_repaired(raw: str) -> None:
    value, repaired = llm.parse_tool_arguments(raw)
    assert not repaired
    assert value == ({"city": "Paris"} if "city" in raw else {})
    # null is JSON but no object: the call has no arguments, stored as "{}" from then on
    assert llm.parse_tool_arguments("null") == ({}, True)


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("the weather in Paris", "no JSON"),
        ('{"city" "Paris"}', "expected ':'"),
        ("[1, 2]", "expected a JSON object"),
        ("42", "expected a JSON object"),
    ],
)
def test_hopeless_arguments_raise(raw: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        llm.parse_tool_arguments(raw)


def test_nan_is_not_valid_json() -> None:
    # Python's json accepts NaN; servers do not, so it counts as malformed
    value, repaired = llm.parse_tool_arguments('{"x": NaN}')
    assert repaired and json.dumps(value) == '{"x": "NaN"}'


class Weather(llm.FunctionContext):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[dict[str, Any]] = []

    @llm.ai_callable()
    def get_weather(self, city: str, days: int = 1) -> str:
        """Get the weather.

        Args:
            city: The city to look up,
                e.g. Paris.
            days: How many days ahead.
        """
        self.seen.append({"city": city, "days": days})
        return f"sunny in {city}"


def _call(raw: str, call_id: str = "c1", name: str = "get_weather") -> llm.FunctionCallInfo:
    return llm.FunctionCallInfo.create(tool_call_id=call_id, name=name, raw_arguments=raw)


def test_repaired_arguments_are_stored_and_resent_as_valid_json() -> None:
    fnc = Weather()
    call = _call("{'city': 'Paris', 'days': 2,}<|im_end|>")
    call.resolve(fnc)
    assert call.error is None and call.arguments == {"city": "Paris", "days": 2}
    assert json.loads(call.raw_arguments) == {"city": "Paris", "days": 2}
    assert call.original_arguments == "{'city': 'Paris', 'days': 2,}<|im_end|>"
    call.resolve(fnc)  # idempotent
    assert call.error is None and call.arguments == {"city": "Paris", "days": 2}

    ctx = llm.ChatContext().append(role="user", text="weather?")
    ctx.messages.append(llm.ChatMessage.create_tool_calls([call]))
    ctx.messages.append(llm.ChatMessage.create_tool_from_called_function(call.execute()))
    sent = ctx.to_openai()[1]["tool_calls"][0]["function"]["arguments"]
    assert json.loads(sent) == {"city": "Paris", "days": 2}
    assert fnc.seen == [{"city": "Paris", "days": 2}]


def test_unreadable_arguments_become_an_error_result_and_are_never_resent() -> None:
    fnc = Weather()
    call = _call('{"city" Paris')
    call.resolve(fnc)
    assert isinstance(call.error, llm.ToolCallError)
    assert "not valid JSON" in str(call.error)
    assert call.raw_arguments == "{}" and call.original_arguments == '{"city" Paris'
    call.resolve(fnc)  # resolving again keeps the JSON error, not "'city' is required"
    assert "not valid JSON" in str(call.error)
    result = llm.ChatMessage.create_tool_from_called_function(call.execute())
    assert result.role == "tool" and result.content.startswith("error: the arguments for")
    assert "not valid JSON" in result.content
    assert fnc.seen == []

    ctx = llm.ChatContext()
    ctx.messages.append(llm.ChatMessage.create_tool_calls([call]))
    assert ctx.to_openai()[0]["tool_calls"][0]["function"]["arguments"] == "{}"


def test_unresolved_calls_are_sanitised_when_serialised() -> None:
    # a call a user built by hand and never resolved still goes out as valid JSON
    broken = llm.FunctionCallInfo(tool_call_id="a", function_info=None,
                                  raw_arguments='{"x": 1', name="f")
    hopeless = llm.FunctionCallInfo(tool_call_id="b", function_info=None,
                                    raw_arguments="oops", name="f")
    msg = llm.ChatMessage.create_tool_calls([broken, hopeless])
    calls = llm.to_openai_messages(llm.ChatContext([msg]))[0]["tool_calls"]
    assert [c["function"]["arguments"] for c in calls] == ['{"x": 1}', "{}"]
    assert broken.raw_arguments == '{"x": 1'  # serialising does not change the call


def test_fake_llm_round_trip_with_malformed_arguments() -> None:
    fake = FakeLLM([
        FakeResponse(tool_calls=[FakeToolCall("get_weather", "```json\n{'city': 'Oslo'\n```",
                                              id="w1")]),
        "Sunny.",
    ])
    fnc = Weather()
    ctx = llm.ChatContext().append(role="user", text="weather in Oslo?")
    stream = fake.chat(ctx, fnc_ctx=fnc)
    list(stream)
    called = stream.execute_functions(timeout=10)
    assert called[0].result == "sunny in Oslo"
    ctx.messages.append(llm.ChatMessage.create_tool_calls(stream.function_calls))
    ctx.messages.extend(llm.ChatMessage.create_tool_from_called_function(c) for c in called)
    assert "".join(c.choices[0].delta.content or "" for c in fake.chat(ctx, fnc_ctx=fnc)
                   if c.choices) == "Sunny."
    sent = fake.calls[1].to_openai()[1]["tool_calls"][0]["function"]["arguments"]
    assert json.loads(sent) == {"city": "Oslo"}


# -- docstrings ------------------------------------------------------------------------------


def test_docstring_args_describe_parameters() -> None:
    info = Weather().ai_functions["get_weather"]
    assert info.description == "Get the weather."
    assert info.arguments["city"].description == "The city to look up, e.g. Paris."
    props = info.json_schema()["function"]["parameters"]["properties"]
    assert props["days"]["description"] == "How many days ahead."


def test_type_info_description_wins_over_the_docstring() -> None:
    fnc = llm.FunctionContext()

    @fnc.ai_callable()
    def book(
        room: Annotated[str, llm.TypeInfo(description="from TypeInfo")],
        nights: int,
        guests: Annotated[int, Field(description="from Field")] = 1,
    ) -> None:
        """Book a room.

        More text about booking.

        Args:
            room (str): from the docstring
            nights (int): Number of nights,
                at least one.
            guests: from the docstring too

        Returns:
            nothing useful
        """

    info = fnc.ai_functions["book"]
    assert info.description == "Book a room.\n\nMore text about booking."
    assert info.arguments["room"].description == "from TypeInfo"
    assert info.arguments["nights"].description == "Number of nights, at least one."
    assert info.arguments["guests"].description == "from Field"


def test_parse_docstring_forms() -> None:
    doc = llm.parse_docstring("""Do it.

    :param str a: first
    :param b: second
        continued
    :returns: nothing
    """)
    assert doc.description == "Do it."
    assert doc.params == {"a": "first", "b": "second continued"}
    assert llm.parse_docstring(None).description == ""
    google = llm.parse_docstring("Summary.\n\nArguments:\n    x: the x\n    *args: more\n")
    assert google.params == {"x": "the x", "args": "more"}


# -- pydantic models and Field constraints ---------------------------------------------------


class Address(BaseModel):
    street: str
    zip_code: Annotated[str, Field(pattern=r"^\d{5}$", description="five digits")]


class Order(BaseModel):
    item: str = Field(description="what to order")
    quantity: int = Field(1, ge=1, le=10)
    address: Address | None = None


class Shop(llm.FunctionContext):
    def __init__(self) -> None:
        super().__init__()
        self.orders: list[Any] = []

    @llm.ai_callable()
    def place_order(
        self,
        order: Order,
        priority: Annotated[int, Field(ge=1, le=3, description="1 is urgent")] = 2,
        note: str = Field("", max_length=20),
        tags: list[str] = Field(default_factory=list),  # noqa: B008
        mode: Literal["pickup", "delivery"] = "pickup",
    ) -> str:
        """Place an order."""
        self.orders.append((order, priority, note, tags, mode))
        return "ok"


def test_pydantic_schema() -> None:
    info = Shop().ai_functions["place_order"]
    params = info.json_schema()["function"]["parameters"]
    assert params["required"] == ["order"]
    props = params["properties"]
    assert props["priority"] == {"default": 2, "description": "1 is urgent", "maximum": 3,
                                 "minimum": 1, "type": "integer"}
    assert props["note"]["maxLength"] == 20 and props["note"]["default"] == ""
    assert props["mode"]["enum"] == ["pickup", "delivery"]
    assert props["tags"]["type"] == "array"
    # the model's schema, with its nested models hoisted to the top-level $defs
    assert props["order"]["$ref"] == "#/$defs/Order"
    order = params["$defs"]["Order"]
    assert order["properties"]["quantity"]["minimum"] == 1
    assert params["$defs"]["Address"]["properties"]["zip_code"]["pattern"] == r"^\d{5}$"


def test_pydantic_arguments_are_validated_and_converted() -> None:
    shop = Shop()
    call = llm.FunctionCallInfo.create(
        tool_call_id="o1", name="place_order", fnc_ctx=shop,
        raw_arguments=json.dumps({"order": {"item": "tea", "quantity": "3",
                                            "address": {"street": "Main", "zip_code": "12345"}},
                                  "priority": 1}),
    )
    assert call.error is None, call.error
    assert call.execute().result == "ok"
    order, priority, note, tags, mode = shop.orders[0]
    assert isinstance(order, Order) and order.quantity == 3
    assert order.address is not None and order.address.zip_code == "12345"
    # omitted Field(...) defaults are filled in: the Python default is the Field object
    assert (priority, note, tags, mode) == (1, "", [], "pickup")


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        ({"order": {"item": "tea", "quantity": 11}}, ["'order.quantity'", "less than or equal"]),
        ({"order": {"quantity": 1}}, ["'order.item'", "field required"]),
        ({"order": {"item": "t"}, "priority": 0}, ["'priority'", "greater than or equal"]),
        ({"order": {"item": "t"}, "mode": "drone"}, ["'mode'", "'pickup' or 'delivery'"]),
        ({"order": {"item": "t", "address": {"street": "s", "zip_code": "1"}}},
         ["'order.address.zip_code'", "pattern"]),
        ({"priority": 1}, ["'order' is required"]),
    ],
)
def test_pydantic_violations_become_error_results(
    args: dict[str, Any], fragments: list[str]
) -> None:
    shop = Shop()
    call = llm.FunctionCallInfo.create(tool_call_id="o1", name="place_order", fnc_ctx=shop,
                                       raw_arguments=json.dumps(args))
    assert isinstance(call.error, llm.ToolCallError)
    for fragment in fragments:
        assert fragment in str(call.error), str(call.error)
    msg = llm.ChatMessage.create_tool_from_called_function(call.execute())
    assert msg.content.startswith("error: invalid arguments for place_order")
    assert shop.orders == []


def test_unions_and_dicts_go_through_pydantic() -> None:
    fnc = llm.FunctionContext()

    @fnc.ai_callable()
    def setv(value: int | str, weights: dict[str, float]) -> str:
        return f"{value!r} {weights!r}"

    props = fnc.ai_functions["setv"].json_schema()["function"]["parameters"]["properties"]
    assert props["value"]["anyOf"] == [{"type": "integer"}, {"type": "string"}]
    call = llm.FunctionCallInfo.create(tool_call_id="s", name="setv", fnc_ctx=fnc,
                                       raw_arguments='{"value": 3, "weights": {"a": "0.5"}}')
    assert call.execute().result == "3 {'a': 0.5}"


class Opaque:
    pass


def test_unsupported_types_still_fail_at_registration() -> None:
    fnc = llm.FunctionContext()

    def f(x: Opaque) -> None:
        pass

    with pytest.raises(TypeError, match=r"f\.x"):
        fnc.ai_callable()(f)

    def g(x: dict) -> None:  # type: ignore[type-arg]
        pass

    with pytest.raises(TypeError, match=r"g\.x"):
        fnc.ai_callable()(g)


# -- raw JSON-schema tools -------------------------------------------------------------------

RAW_SCHEMA = {
    "name": "open_gate",
    "description": "Open a gate.",
    "parameters": {
        "type": "object",
        "properties": {
            "gate": {"type": "string", "enum": ["north", "south"]},
            "seconds": {"type": "integer", "description": "how long"},
        },
        "required": ["gate"],
    },
}


class Gates(llm.FunctionContext):
    def __init__(self) -> None:
        super().__init__()
        self.opened: list[dict[str, Any]] = []

    @llm.ai_callable(raw_schema=RAW_SCHEMA)
    def open_gate(self, raw_arguments: dict[str, Any]) -> str:
        self.opened.append(raw_arguments)
        return f"{raw_arguments['gate']} open"


def test_raw_schema_tool() -> None:
    gates = Gates()
    info = gates.ai_functions["open_gate"]
    assert info.is_raw and info.arguments == {}
    assert info.json_schema() == {"type": "function", "function": RAW_SCHEMA}
    call = llm.FunctionCallInfo.create(tool_call_id="g", name="open_gate", fnc_ctx=gates,
                                       raw_arguments="{'gate': 'north', 'seconds': 5")
    assert call.error is None
    assert call.execute().result == "north open"
    assert gates.opened == [{"gate": "north", "seconds": 5}]


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ('{"seconds": 5}', "'gate' is required"),
        ('{"gate": "east"}', "must be one of"),
        ('{"gate": "north", "seconds": "five"}', "must be of type integer"),
        ("[]", "must be a JSON object"),
    ],
)
def test_raw_schema_arguments_are_checked(raw: str, fragment: str) -> None:
    gates = Gates()
    call = llm.FunctionCallInfo.create(tool_call_id="g", name="open_gate", fnc_ctx=gates,
                                       raw_arguments=raw)
    assert call.error is not None and fragment in str(call.error)
    assert call.execute().exception is call.error and gates.opened == []


def test_raw_schema_on_an_instance_and_from_the_openai_tool_form() -> None:
    fnc = llm.FunctionContext()
    tool = {"type": "function", "function": {**RAW_SCHEMA, "name": "gate2"}}
    got: list[dict[str, Any]] = []
    fnc.ai_callable(raw_schema=tool)(got.append)
    info = llm.build_raw_function_info(lambda args: args, RAW_SCHEMA, name="gate3")
    fnc.add_function(info)
    assert list(fnc.ai_functions) == ["gate2", "gate3"]
    call = llm.FunctionCallInfo.create(tool_call_id="x", name="gate2", fnc_ctx=fnc,
                                       raw_arguments='{"gate": "south"}')
    call.execute()
    assert got == [{"gate": "south"}]
    with pytest.raises(ValueError, match="duplicate"):
        fnc.add_function(info)


@pytest.mark.parametrize(
    "bad",
    [
        {"description": "no name", "parameters": {"type": "object"}},
        {"name": "x", "parameters": {"type": "array"}},
        {"name": "x", "parameters": "nope"},
    ],
)
def test_bad_raw_schemas_fail_at_registration(bad: dict[str, Any]) -> None:
    fnc = llm.FunctionContext()
    with pytest.raises(TypeError):
        fnc.ai_callable(raw_schema=bad)(lambda args: None)
    with pytest.raises(TypeError, match="one argument"):
        fnc.ai_callable(raw_schema=RAW_SCHEMA)(lambda a, b: None)


# -- strict schemas --------------------------------------------------------------------------


class Unit(enum.Enum):
    C = "celsius"
    F = "fahrenheit"


class StrictTools(llm.FunctionContext):
    @llm.ai_callable(strict=True)
    def forecast(self, city: str, unit: Unit = Unit.C, days: int | None = None,
                 order: Order | None = None) -> str:
        """Forecast."""
        return f"{city} {unit.value} {days}"


def _assert_strict(schema: Any) -> None:
    if isinstance(schema, list):
        for sub in schema:
            _assert_strict(sub)
        return
    if not isinstance(schema, dict):
        return
    assert "default" not in schema
    if schema.get("type") == "object" or "properties" in schema:
        assert schema["additionalProperties"] is False
        assert sorted(schema["required"]) == sorted(schema["properties"])
    for key, sub in schema.items():
        if key in ("properties", "$defs"):
            for s in sub.values():
                _assert_strict(s)
        elif key in ("items", "anyOf", "oneOf", "allOf"):
            _assert_strict(sub)


def test_strict_schema() -> None:
    fnc = StrictTools()
    tool = fnc.ai_functions["forecast"].json_schema()
    assert tool["function"]["strict"] is True
    params = tool["function"]["parameters"]
    _assert_strict(params)
    assert params["required"] == ["city", "unit", "days", "order"]
    assert params["properties"]["city"] == {"type": "string"}
    assert params["properties"]["unit"] == {"type": ["string", "null"],
                                            "enum": ["celsius", "fahrenheit", None]}
    # non-strict on request, and every tool strict on request
    assert "strict" not in fnc.ai_functions["forecast"].json_schema(strict=False)["function"]
    weather = llm.build_tool_schemas(Weather(), strict=True)[0]["function"]
    assert weather["strict"] is True and weather["parameters"]["required"] == ["city", "days"]
    assert weather["parameters"]["properties"]["days"]["type"] == ["integer", "null"]


def test_strict_nulls_mean_defaults() -> None:
    fnc = StrictTools()
    call = llm.FunctionCallInfo.create(
        tool_call_id="f", name="forecast", fnc_ctx=fnc,
        raw_arguments='{"city": "Rome", "unit": null, "days": null, "order": null}')
    assert call.execute().result == "Rome celsius None"


def test_to_strict_json_schema_inlines_refs_with_siblings() -> None:
    schema = {
        "type": "object",
        "properties": {"a": {"$ref": "#/$defs/A", "description": "an A"}},
        "$defs": {"A": {"type": "object", "properties": {"x": {"type": "integer",
                                                               "default": 1}}}},
    }
    strict = llm.to_strict_json_schema(schema)
    assert strict["properties"]["a"]["description"] == "an A"
    assert strict["properties"]["a"]["properties"]["x"] == {"type": ["integer", "null"]}
    _assert_strict(strict)
    assert "additionalProperties" not in schema  # the input is left alone


# -- tool_choice and parallel_tool_calls -----------------------------------------------------


class OptionsLLM(llm.LLM):
    """A plugin that takes the newer options."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[Any, Any]] = []

    def _chat(
        self,
        chat_ctx: llm.ChatContext,
        fnc_ctx: llm.FunctionContext | None,
        temperature: float | None,
        *,
        tool_choice: Any = None,
        parallel_tool_calls: bool | None = None,
    ) -> Iterator[llm.ChatChunk]:
        self.seen.append((tool_choice, parallel_tool_calls))
        yield llm.ChatChunk(choices=[llm.Choice(delta=llm.ChoiceDelta(content="ok"))])


class KwargsLLM(llm.LLM):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[dict[str, Any]] = []

    def _chat(self, chat_ctx: Any, fnc_ctx: Any, temperature: Any,
              **kwargs: Any) -> Iterator[llm.ChatChunk]:
        self.seen.append(kwargs)
        yield llm.ChatChunk(choices=[llm.Choice(delta=llm.ChoiceDelta(content="ok"))])


class OldLLM(llm.LLM):
    """A plugin written against the original three-argument ``_chat``."""

    def _chat(self, chat_ctx: llm.ChatContext, fnc_ctx: llm.FunctionContext | None,
              temperature: float | None) -> Iterator[llm.ChatChunk]:
        yield llm.ChatChunk(choices=[llm.Choice(delta=llm.ChoiceDelta(content="old"))])


def _drain(stream: llm.LLMStream) -> str:
    with stream:
        return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)


def test_tool_choice_reaches_plugins_that_take_it() -> None:
    ctx = llm.ChatContext().append(role="user", text="hi")
    fnc = Weather()
    plugin = OptionsLLM()
    _drain(plugin.chat(ctx, fnc, tool_choice="required", parallel_tool_calls=False))
    _drain(plugin.chat(ctx, fnc, tool_choice="get_weather"))
    _drain(plugin.chat(ctx, fnc, tool_choice={"type": "function",
                                              "function": {"name": "get_weather"}}))
    _drain(plugin.chat(ctx, fnc))
    named = {"type": "function", "function": {"name": "get_weather"}}
    assert plugin.seen == [("required", False), (named, None), (named, None), (None, None)]

    kw = KwargsLLM()
    stream = kw.chat(ctx, fnc, tool_choice="none", parallel_tool_calls=True)
    assert stream.tool_choice == "none" and stream.parallel_tool_calls is True
    _drain(stream)
    _drain(kw.chat(ctx, fnc))
    assert kw.seen == [{"tool_choice": "none", "parallel_tool_calls": True}, {}]


def test_old_plugins_keep_working_with_the_new_options() -> None:
    ctx = llm.ChatContext().append(role="user", text="hi")
    assert _drain(OldLLM().chat(ctx, Weather(), tool_choice="auto",
                                parallel_tool_calls=True)) == "old"
    fake = FakeLLM(["scripted"])
    assert _drain(fake.chat(ctx, Weather(), tool_choice="none")) == "scripted"


@pytest.mark.parametrize(
    ("choice", "fragment"),
    [
        ("missing_tool", "not among the tools"),
        ({"type": "function", "function": {"name": "nope"}}, "not among the tools"),
        ({"type": "other"}, "tool_choice must be"),
        (3, "tool_choice must be"),
    ],
)
def test_bad_tool_choice_is_one_clear_error(choice: Any, fragment: str) -> None:
    ctx = llm.ChatContext().append(role="user", text="hi")
    with pytest.raises(ValueError, match=fragment):
        OptionsLLM().chat(ctx, Weather(), tool_choice=choice)
    with pytest.raises(TypeError, match="parallel_tool_calls"):
        OptionsLLM().chat(ctx, Weather(), parallel_tool_calls="yes")  # type: ignore[arg-type]


# -- images ----------------------------------------------------------------------------------


def _png_bytes() -> bytes:
    frame = av.VideoFrame.from_ndarray(np.zeros((8, 8, 3), np.uint8), format="rgb24")
    ctx: Any = av.CodecContext.create("png", "w")
    ctx.width, ctx.height, ctx.pix_fmt = 8, 8, "rgb24"
    return b"".join(bytes(p) for p in ctx.encode(frame))


def _video_frame(width: int = 64, height: int = 48) -> Any:
    from livekit import rtc

    rgba = np.zeros((height, width, 4), np.uint8)
    rgba[:, : width // 2] = (255, 0, 0, 255)  # left half red, right half blue
    rgba[:, width // 2 :] = (0, 0, 255, 255)
    return rtc.VideoFrame(width, height, rtc.VideoBufferType.RGBA, rgba.tobytes())


def _decode_data_url(url: str) -> Any:
    head, _, data = url.partition(",")
    assert head == "data:image/jpeg;base64"
    with av.open(io.BytesIO(base64.b64decode(data))) as container:
        return next(container.decode(video=0)).to_ndarray(format="rgb24")


def test_images_in_user_messages_are_serialised() -> None:
    png = _png_bytes()
    ctx = llm.ChatContext().append(
        role="user", text="What is in these?",
        images=[llm.ChatImage(image="https://example.com/cat.png", inference_detail="low"),
                llm.ChatImage(image=png),
                llm.ChatImage(image=_video_frame(), inference_width=32, inference_height=32)],
    )
    msg = ctx.messages[0]
    assert msg.text == "What is in these?" and len(msg.images) == 3
    parts = ctx.to_openai()[0]["content"]
    assert parts[0] == {"type": "text", "text": "What is in these?"}
    assert parts[1] == {"type": "image_url", "image_url": {"url": "https://example.com/cat.png",
                                                           "detail": "low"}}
    assert parts[2]["image_url"]["url"] == "data:image/png;base64," + base64.b64encode(
        png).decode()
    pixels = _decode_data_url(parts[3]["image_url"]["url"])
    assert pixels.shape == (24, 32, 3)  # 64x48 scaled to fit 32x32, aspect kept
    left, right = pixels[:, :8].mean(axis=(0, 1)), pixels[:, -8:].mean(axis=(0, 1))
    assert left[0] > 200 and left[2] < 60 and right[2] > 200 and right[0] < 60


@pytest.mark.parametrize(
    ("buffer_type", "av_format"),
    [("RGBA", "rgba"), ("BGRA", "bgra"), ("ARGB", "argb"), ("RGB24", "rgb24"),
     ("I420", "yuv420p"), ("NV12", "nv12"), ("I444", "yuv444p")],
)
def test_every_common_frame_layout_encodes(buffer_type: str, av_format: str) -> None:
    from livekit import rtc

    frame = _video_frame(16, 16)
    if buffer_type != "RGBA":  # I444 has no numpy path here: livekit converts it to RGBA
        rgba = np.frombuffer(frame.data, np.uint8).reshape(16, 16, 4)
        data = av.VideoFrame.from_ndarray(rgba, format="rgba").reformat(format=av_format)
        frame = rtc.VideoFrame(16, 16, getattr(rtc.VideoBufferType, buffer_type),
                               data.to_ndarray().tobytes())
    url = llm.serialize_image(llm.ChatImage(image=frame))
    pixels = _decode_data_url(url)
    assert pixels.shape == (16, 16, 3)
    assert pixels[:, :4, 0].mean() > 200 and pixels[:, -4:, 2].mean() > 200


def test_image_contexts_copy_and_validate() -> None:
    image = llm.ChatImage(image="data:image/png;base64,AAAA")
    ctx = llm.ChatContext([llm.ChatMessage(role="user", content=["look", image])])
    copied = ctx.copy()
    copied.messages[0].content.append("more")
    assert ctx.messages[0].content == ["look", image]
    # images only go with user messages; the text of others still goes
    other = llm.ChatContext([llm.ChatMessage(role="system", content=["rules", image])])
    assert other.to_openai() == [{"role": "system", "content": "rules"}]
    # a content list of text only stays a plain string for text-only servers
    plain = llm.ChatContext([llm.ChatMessage(role="user", content=["a", "b"])])
    assert plain.to_openai() == [{"role": "user", "content": "a\nb"}]
    with pytest.raises(ValueError, match="URL"):
        llm.ChatImage(image="cat.png")
    with pytest.raises(ValueError, match="JPEG, PNG"):
        llm.ChatImage(image=b"not an image")
    with pytest.raises(TypeError, match="VideoFrame"):
        llm.ChatImage(image=42)
    with pytest.raises(ValueError, match="inference_detail"):
        llm.ChatImage(image="https://x/y.png", inference_detail="max")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="inference_width"):
        llm.ChatImage(image="https://x/y.png", inference_width=0)
    with pytest.raises(TypeError, match="content parts"):
        llm.ChatMessage(role="user", content=["x", 3])
