"""The chat API through aigw with the official OpenAI Python SDK.

Run by tests/chat_api.rs against a gateway and a Bedrock emulator on loopback:
    python chat_api.py BASE_URL MODEL SCENARIO
Each scenario asserts what a user of the SDK would see and exits non-zero (with the
assertion's message) when something differs.
"""

import json
import sys

import openai

BASE_URL, MODEL, SCENARIO = sys.argv[1], sys.argv[2], sys.argv[3]
client = openai.OpenAI(api_key="not-checked", base_url=BASE_URL, max_retries=0)

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city", "unit"],
        },
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "The local time in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
QUESTION = [{"role": "user", "content": "What is the weather in Krakow?"}]
RESULTS = {"get_weather": "sunny and 21 degrees", "get_time": "half past nine"}


def check_calls(calls, names):
    assert [c.function.name for c in calls] == names, calls
    for call in calls:
        assert call.type == "function", call
        assert call.id, call
        args = json.loads(call.function.arguments)
        assert "city" in args, args
        if call.function.name == "get_weather":
            assert args["unit"] == "celsius", args


def results_for(calls):
    return [
        {"role": "tool", "tool_call_id": c.id, "content": RESULTS[c.function.name]}
        for c in calls
    ]


def assert_final(message, finish, names):
    assert finish == "stop", finish
    assert not message.tool_calls, message.tool_calls
    for name in names:
        assert RESULTS[name] in message.content, message.content


def unary_loop(tools, names):
    first = client.chat.completions.create(model=MODEL, messages=QUESTION, tools=tools)
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls", choice
    check_calls(choice.message.tool_calls, names)
    history = QUESTION + [choice.message.model_dump(exclude_none=True)]
    history += results_for(choice.message.tool_calls)
    final = client.chat.completions.create(model=MODEL, messages=history, tools=tools)
    assert_final(final.choices[0].message, final.choices[0].finish_reason, names)
    return choice.message


def stream_loop(tools, names, unary_message):
    # The SDK's own accumulation of the stream's deltas.
    with client.chat.completions.stream(model=MODEL, messages=QUESTION, tools=tools) as stream:
        for _ in stream:
            pass
        first = stream.get_final_completion()
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls", choice
    check_calls(choice.message.tool_calls, names)
    streamed = [(c.id, c.function.name, json.loads(c.function.arguments)) for c in choice.message.tool_calls]
    whole = [(c.id, c.function.name, json.loads(c.function.arguments)) for c in unary_message.tool_calls]
    assert streamed == whole, (streamed, whole)
    assert choice.message.content == unary_message.content, (choice.message.content, unary_message.content)
    history = QUESTION + [choice.message.model_dump(exclude_none=True)]
    history += results_for(choice.message.tool_calls)
    with client.chat.completions.stream(model=MODEL, messages=history, tools=tools) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion()
    assert_final(final.choices[0].message, final.choices[0].finish_reason, names)

    # Assembled by hand the documented way: arguments concatenated per index.
    calls = {}
    chunks = client.chat.completions.create(model=MODEL, messages=QUESTION, tools=tools, stream=True)
    fragments = 0
    for chunk in chunks:
        for choice in chunk.choices:
            for delta in choice.delta.tool_calls or []:
                call = calls.setdefault(delta.index, {"id": None, "name": None, "arguments": ""})
                if delta.id:
                    call["id"] = delta.id
                if delta.function and delta.function.name:
                    call["name"] = delta.function.name
                if delta.function and delta.function.arguments:
                    call["arguments"] += delta.function.arguments
                    fragments += 1
    assert sorted(calls) == list(range(len(names))), calls
    assembled = [(calls[i]["id"], calls[i]["name"], json.loads(calls[i]["arguments"])) for i in sorted(calls)]
    assert assembled == whole, (assembled, whole)
    assert fragments > len(names), f"arguments came in {fragments} fragments"


def tool_loop():
    message = unary_loop([WEATHER], ["get_weather"])
    stream_loop([WEATHER], ["get_weather"], message)


def parallel():
    message = unary_loop([WEATHER, TIME], ["get_weather", "get_time"])
    stream_loop([WEATHER, TIME], ["get_weather", "get_time"], message)


def reasoning():
    answer = client.chat.completions.create(model=MODEL, messages=QUESTION, reasoning_effort="low")
    message = answer.choices[0].message
    extra = message.model_extra
    assert extra.get("reasoning_content"), extra
    assert extra["thinking_blocks"][0]["signature"], extra
    text = ""
    signature = None
    for chunk in client.chat.completions.create(
        model=MODEL, messages=QUESTION, reasoning_effort="low", stream=True
    ):
        for choice in chunk.choices:
            delta = choice.delta.model_extra or {}
            text += delta.get("reasoning_content") or ""
            for block in delta.get("thinking_blocks") or []:
                signature = block.get("signature") or signature
    assert text == extra["reasoning_content"], (text, extra["reasoning_content"])
    assert signature == extra["thinking_blocks"][0]["signature"], signature
    # The reasoning goes back with the tool loop, signature and all.
    first = client.chat.completions.create(
        model=MODEL, messages=QUESTION, tools=[WEATHER], reasoning_effort="low"
    )
    history = QUESTION + [first.choices[0].message.model_dump(exclude_none=True)]
    history += results_for(first.choices[0].message.tool_calls)
    final = client.chat.completions.create(
        model=MODEL, messages=history, tools=[WEATHER], reasoning_effort="low"
    )
    assert final.choices[0].finish_reason == "stop", final


def cached_tokens():
    long_system = "You are a meticulous assistant. " * 40
    messages = [
        {
            "role": "system",
            "content": [
                {"type": "text", "text": long_system, "cache_control": {"type": "ephemeral"}}
            ],
        }
    ] + QUESTION
    first = client.chat.completions.create(model=MODEL, messages=messages)
    assert first.usage.model_extra.get("cache_creation_input_tokens", 0) > 0, first.usage
    assert first.usage.prompt_tokens_details.cached_tokens == 0, first.usage
    second = client.chat.completions.create(model=MODEL, messages=messages)
    cached = second.usage.prompt_tokens_details.cached_tokens
    assert cached > 0, second.usage
    assert second.usage.prompt_tokens > cached, second.usage
    usage = None
    for chunk in client.chat.completions.create(
        model=MODEL, messages=messages, stream=True, stream_options={"include_usage": True}
    ):
        if chunk.usage:
            usage = chunk.usage
    assert usage.prompt_tokens_details.cached_tokens == cached, usage
    assert usage.prompt_tokens == second.usage.prompt_tokens, (usage, second.usage)


def guardrail():
    config = {"guardrailConfig": {"guardrailIdentifier": "gr-test", "guardrailVersion": "1"}}
    answer = client.chat.completions.create(model=MODEL, messages=QUESTION, extra_body=config)
    assert answer.choices[0].finish_reason == "content_filter", answer
    finish = None
    for chunk in client.chat.completions.create(
        model=MODEL, messages=QUESTION, extra_body=config, stream=True
    ):
        for choice in chunk.choices:
            finish = choice.finish_reason or finish
    assert finish == "content_filter", finish


def two_choices():
    try:
        client.chat.completions.create(model=MODEL, messages=QUESTION, n=2)
    except openai.BadRequestError as error:
        assert error.status_code == 400
        body = error.body if isinstance(error.body, dict) else {}
        assert body.get("message", "").startswith("n:"), error.body
        return
    raise AssertionError("n = 2 was answered")


SCENARIOS = {
    "tool_loop": tool_loop,
    "parallel": parallel,
    "reasoning": reasoning,
    "cached_tokens": cached_tokens,
    "guardrail": guardrail,
    "two_choices": two_choices,
}

SCENARIOS[SCENARIO]()
print("ok")
