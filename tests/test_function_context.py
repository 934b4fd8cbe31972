"""AI functions: schemas, argument coercion, error results, concurrent execution, timeouts."""

from __future__ import annotations

import enum
from typing import Annotated, Any

import gevent
import gevent.event
import pytest

from syncagents import llm, runtime


class Unit(enum.Enum):
    CELSIUS = "celsius"
    FAHRENHEIT = "fahrenheit"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Weather(llm.FunctionContext):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[dict[str, Any]] = []

    @llm.ai_callable(description="Get the weather forecast")
    def get_weather(
        self,
        city: Annotated[str, llm.TypeInfo(description="The city name")],
        days: Annotated[int, llm.TypeInfo(description="How many days")],
        unit: Annotated[Unit, llm.TypeInfo(description="Temperature unit")] = Unit.CELSIUS,
        threshold: Annotated[float, llm.TypeInfo(description="Alert threshold")] = 30.0,
        detailed: Annotated[bool, llm.TypeInfo(description="Hourly details")] = False,
        tags: Annotated[list[str], llm.TypeInfo(description="Tags")] = [],  # noqa: B006
        mode: Annotated[str, llm.TypeInfo(description="Mode", choices=["fast", "slow"])] = "fast",
        levels: Annotated[list[Level], llm.TypeInfo(description="Levels")] = [],  # noqa: B006
        hours: Annotated[list[int], llm.TypeInfo(description="Hours", choices=[6, 12])] = [6],  # noqa: B006
    ) -> str:
        self.seen.append(
            dict(city=city, days=days, unit=unit, threshold=threshold, detailed=detailed,
                 tags=tags, mode=mode, levels=levels, hours=hours)
        )
        return f"{city}: sunny for {days} days"

    @llm.ai_callable(name="explode", description="Always fails")
    def _boom(self) -> None:
        raise ValueError("kaboom")

    def not_a_tool(self) -> None:
        pass


def test_json_schema_of_annotated_method() -> None:
    fnc = Weather()
    assert list(fnc.ai_functions) == ["get_weather", "explode"]
    schema = fnc.ai_functions["get_weather"].json_schema()
    assert schema["type"] == "function"
    fn = schema["function"]
    assert fn["name"] == "get_weather"
    assert fn["description"] == "Get the weather forecast"
    params = fn["parameters"]
    assert params["type"] == "object"
    assert params["required"] == ["city", "days"]
    props = params["properties"]
    assert list(props) == [
        "city", "days", "unit", "threshold", "detailed", "tags", "mode", "levels", "hours",
    ]
    assert props["city"] == {"description": "The city name", "type": "string"}
    assert props["days"] == {"description": "How many days", "type": "integer"}
    assert props["unit"] == {
        "description": "Temperature unit", "type": "string", "enum": ["celsius", "fahrenheit"],
    }
    assert props["threshold"]["type"] == "number"
    assert props["detailed"]["type"] == "boolean"
    assert props["tags"] == {"description": "Tags", "type": "array", "items": {"type": "string"}}
    assert props["mode"] == {"description": "Mode", "type": "string", "enum": ["fast", "slow"]}
    assert props["levels"]["items"] == {"type": "integer", "enum": [1, 2]}
    assert props["hours"]["items"] == {"type": "integer", "enum": [6, 12]}

    tools = llm.build_tool_schemas(fnc)
    assert [t["function"]["name"] for t in tools] == ["get_weather", "explode"]
    assert llm.build_tool_schemas(None) == []


def test_arg_info_and_docstring_description() -> None:
    class Docs(llm.FunctionContext):
        @llm.ai_callable
        def ping(self, host: str, count: int | None = None) -> str:
            """Ping a host."""
            return host

    info = Docs().ai_functions["ping"]
    assert info.description == "Ping a host."
    host, count = info.arguments["host"], info.arguments["count"]
    assert host.required and host.type is str and host.description == ""
    assert not count.required and count.default is None and count.nullable


def test_plain_functions_registered_on_an_instance() -> None:
    fnc = llm.FunctionContext()

    @fnc.ai_callable(description="Add two numbers")
    def add(a: int, b: Annotated[int, llm.TypeInfo(description="second")] = 1) -> int:
        return a + b

    assert list(fnc.ai_functions) == ["add"]
    call = llm.FunctionCallInfo.create(
        tool_call_id="c1", name="add", raw_arguments='{"a": "2", "b": 3.0}', fnc_ctx=fnc
    )
    assert call.arguments == {"a": 2, "b": 3}
    assert call.execute().result == 5


def test_override_without_decorator_unregisters() -> None:
    class Quiet(Weather):
        def get_weather(self, *args: Any, **kwargs: Any) -> str:  # type: ignore[override]
            return ""

    assert list(Quiet().ai_functions) == ["explode"]


@pytest.mark.parametrize(
    "define",
    ["dict_param", "no_annotation", "async_fn", "var_args", "bad_choice", "bare_list"],
)
def test_invalid_declarations_fail_at_registration(define: str) -> None:
    fnc = llm.FunctionContext()
    deco = fnc.ai_callable(description="x")
    with pytest.raises(TypeError):
        if define == "dict_param":
            deco(lambda_with(dict))
        elif define == "no_annotation":

            def f(a):  # type: ignore[no-untyped-def]
                return a

            deco(f)
        elif define == "async_fn":

            async def g(a: int) -> int:
                return a

            deco(g)
        elif define == "var_args":

            def h(*a: int) -> None:
                pass

            deco(h)
        elif define == "bad_choice":

            def k(a: Annotated[int, llm.TypeInfo(choices=["one"])]) -> None:
                pass

            deco(k)
        elif define == "bare_list":

            def m(a: list) -> None:  # type: ignore[type-arg]
                pass

            deco(m)


def lambda_with(t: Any) -> Any:
    def f(a: Any) -> None:
        pass

    f.__annotations__ = {"a": t}
    return f


def test_duplicate_names_rejected() -> None:
    fnc = llm.FunctionContext()

    @fnc.ai_callable(name="same")
    def a() -> None:
        pass

    with pytest.raises(ValueError, match="duplicate"):

        @fnc.ai_callable(name="same")
        def b() -> None:
            pass


def _resolve(raw: str, fnc: llm.FunctionContext | None = None) -> llm.FunctionCallInfo:
    call = llm.FunctionCallInfo(tool_call_id="t", function_info=None, raw_arguments=raw,
                                name="get_weather")
    call.resolve(fnc or Weather())
    return call


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('{"city": "Oslo", "days": 3}', {"city": "Oslo", "days": 3}),
        ('{"city": "Oslo", "days": "3"}', {"city": "Oslo", "days": 3}),
        ('{"city": "Oslo", "days": 3.0}', {"city": "Oslo", "days": 3}),
        ('{"city": 75001, "days": 1}', {"city": "75001", "days": 1}),
        ('{"city": "A", "days": 1, "threshold": 3}', {"threshold": 3.0}),
        ('{"city": "A", "days": 1, "threshold": "2.5"}', {"threshold": 2.5}),
        ('{"city": "A", "days": 1, "detailed": "true"}', {"detailed": True}),
        ('{"city": "A", "days": 1, "detailed": "False"}', {"detailed": False}),
        ('{"city": "A", "days": 1, "unit": "fahrenheit"}', {"unit": Unit.FAHRENHEIT}),
        ('{"city": "A", "days": 1, "unit": "Fahrenheit"}', {"unit": Unit.FAHRENHEIT}),
        ('{"city": "A", "days": 1, "unit": "CELSIUS"}', {"unit": Unit.CELSIUS}),
        ('{"city": "A", "days": 1, "levels": [2, "1"]}', {"levels": [Level.HIGH, Level.LOW]}),
        ('{"city": "A", "days": 1, "tags": ["x", 2]}', {"tags": ["x", "2"]}),
        ('{"city": "A", "days": 1, "tags": "[\\"x\\"]"}', {"tags": ["x"]}),
        ('{"city": "A", "days": 1, "hours": ["12", 6]}', {"hours": [12, 6]}),
        ('{"city": "A", "days": 1, "mode": "slow"}', {"mode": "slow"}),
        ('{"city": "A", "days": 1, "unit": null}', {"city": "A", "days": 1}),
        ('{"city": "A", "days": 1, "extra": 5}', {"city": "A", "days": 1}),
    ],
)
def test_argument_coercion(raw: str, expected: dict[str, Any]) -> None:
    call = _resolve(raw)
    assert call.error is None, call.error
    for key, value in expected.items():
        assert call.arguments[key] == value
        assert type(call.arguments[key]) is type(value)
    assert "extra" not in call.arguments


def test_missing_optional_arguments_take_defaults_when_run() -> None:
    fnc = Weather()
    called = _resolve('{"city": "Rome", "days": 2}', fnc).execute()
    assert called.exception is None and called.result == "Rome: sunny for 2 days"
    assert fnc.seen == [
        dict(city="Rome", days=2, unit=Unit.CELSIUS, threshold=30.0, detailed=False, tags=[],
             mode="fast", levels=[], hours=[6])
    ]


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ('{"days": 1}', "'city' is required"),
        ('{"city": null, "days": 1}', "'city' is required"),
        ('{"city": "A", "days": 1.5}', "'days' must be an integer"),
        ('{"city": "A", "days": "three"}', "'days' must be an integer"),
        ('{"city": "A", "days": true}', "'days' must be an integer"),
        ('{"city": ["A"], "days": 1}', "'city' must be a string"),
        ('{"city": "A", "days": 1, "threshold": "hot"}', "'threshold' must be a number"),
        ('{"city": "A", "days": 1, "detailed": "maybe"}', "'detailed' must be a boolean"),
        ('{"city": "A", "days": 1, "unit": "kelvin"}', '"celsius", "fahrenheit"'),
        ('{"city": "A", "days": 1, "mode": "medium"}', "'mode' must be one of"),
        ('{"city": "A", "days": 1, "hours": [6, 7]}', "'hours' item 1 must be one of"),
        ('{"city": "A", "days": 1, "tags": "x"}', "'tags' must be an array"),
        ('{"city": "A", "days": 1, "levels": [3]}', "'levels' item 0 must be one of"),
        ('{"city": "A", ', "'days' is required"),  # repaired, then checked
        ("city is Paris", "not valid JSON"),
        ('{"city": "A", "days" 1}', "not valid JSON"),
        ('["A", 1]', "must be a JSON object"),
    ],
)
def test_bad_arguments_become_error_results(raw: str, fragment: str) -> None:
    fnc = Weather()
    call = _resolve(raw, fnc)
    assert isinstance(call.error, llm.ToolCallError)
    assert fragment in str(call.error)
    called = call.execute()
    assert fnc.seen == []  # the function never ran
    assert isinstance(called.exception, llm.ToolCallError)
    msg = llm.ChatMessage.create_tool_from_called_function(called)
    assert msg.role == "tool" and msg.tool_call_id == "t"
    assert msg.content is not None and msg.content.startswith("error: ")
    assert fragment in msg.content


def test_every_problem_is_reported_at_once() -> None:
    call = _resolve('{"days": "x", "unit": "kelvin"}')
    text = str(call.error)
    assert "'city' is required" in text and "'days'" in text and "'unit'" in text


def test_unknown_function_and_raising_function() -> None:
    fnc = Weather()
    unknown = llm.FunctionCallInfo.create(tool_call_id="u", name="nope", raw_arguments="{}",
                                          fnc_ctx=fnc)
    assert unknown.function_info is None
    msg = llm.ChatMessage.create_tool_from_called_function(unknown.execute())
    assert msg.content is not None
    assert msg.content.startswith("error: unknown function 'nope'")
    assert "get_weather" in msg.content

    boom = llm.FunctionCallInfo.create(tool_call_id="b", name="explode", raw_arguments="",
                                       fnc_ctx=fnc)
    assert boom.error is None and boom.arguments == {}
    called = boom.execute()
    assert isinstance(called.exception, ValueError)
    msg = llm.ChatMessage.create_tool_from_called_function(called)
    assert msg.content == "error: ValueError: kaboom"
    assert msg.tool_exception is called.exception


def test_results_are_rendered_as_text() -> None:
    call = llm.FunctionCallInfo(tool_call_id="r", function_info=None, raw_arguments="{}")
    render = llm.ChatMessage.create_tool_from_called_function
    assert render(llm.CalledFunction(call, result={"temp": 21})).content == '{"temp": 21}'
    assert render(llm.CalledFunction(call, result=42)).content == "42"
    assert render(llm.CalledFunction(call, result="plain")).content == "plain"
    assert render(llm.CalledFunction(call, result=None)).content == ""


class Pair(llm.FunctionContext):
    """Two functions that each need the other to have started: only concurrency finishes."""

    def __init__(self) -> None:
        super().__init__()
        self.a_started = gevent.event.Event()
        self.b_started = gevent.event.Event()
        self.job_ids: list[str | None] = []

    @llm.ai_callable(description="a")
    def func_a(self) -> str:
        self.job_ids.append(runtime.current_job_id())
        self.a_started.set()
        if not self.b_started.wait(timeout=10):
            raise TimeoutError("b never started")
        return "a done"

    @llm.ai_callable(description="b")
    def func_b(self) -> str:
        self.job_ids.append(runtime.current_job_id())
        self.b_started.set()
        if not self.a_started.wait(timeout=10):
            raise TimeoutError("a never started")
        return "b done"


def _calls(fnc: llm.FunctionContext, *names: str) -> list[llm.FunctionCallInfo]:
    return [
        llm.FunctionCallInfo.create(tool_call_id=f"id{i}", name=n, raw_arguments="{}",
                                    fnc_ctx=fnc)
        for i, n in enumerate(names)
    ]


def test_functions_run_concurrently_in_the_callers_job() -> None:
    fnc = Pair()

    def job() -> list[llm.CalledFunction]:
        return llm.execute_function_calls(_calls(fnc, "func_a", "func_b"), timeout=20)

    g = gevent.spawn(job)
    runtime.bind_job_id(g, "job-42")
    results = g.get(timeout=30)
    assert [r.result for r in results] == ["a done", "b done"]
    assert [r.call_info.tool_call_id for r in results] == ["id0", "id1"]
    assert fnc.job_ids == ["job-42", "job-42"]


class Slow(llm.FunctionContext):
    def __init__(self) -> None:
        super().__init__()
        self.never = gevent.event.Event()
        self.started = gevent.event.Event()
        self.unwound = gevent.event.Event()

    @llm.ai_callable(description="blocks until killed")
    def hang(self) -> str:
        self.started.set()
        try:
            self.never.wait()
            return "impossible"
        finally:
            self.unwound.set()

    @llm.ai_callable(description="quick")
    def quick(self) -> str:
        return "quick"


def test_timeout_kills_unfinished_functions() -> None:
    fnc = Slow()
    results = llm.execute_function_calls(_calls(fnc, "hang", "quick"), timeout=0.2)
    assert fnc.unwound.is_set()  # killed, not left running
    hang, quick = results
    assert isinstance(hang.exception, TimeoutError)
    assert quick.result == "quick"
    msg = llm.ChatMessage.create_tool_from_called_function(hang)
    assert msg.content is not None and msg.content.startswith("error: TimeoutError")


def test_functions_die_with_a_killed_caller() -> None:
    fnc = Slow()
    g = gevent.spawn(llm.execute_function_calls, _calls(fnc, "hang"))
    assert fnc.started.wait(timeout=10)
    g.kill(timeout=10)
    assert g.dead
    assert fnc.unwound.is_set()


def test_no_calls_is_a_no_op() -> None:
    assert llm.execute_function_calls([], timeout=0.01) == []
