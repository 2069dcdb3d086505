"""Anthropic's Messages API through aigw with the official Anthropic Python SDK.

Run by tests/anthropic_api.rs against a gateway route with `llm_format: anthropic` and a
Bedrock emulator on loopback:
    python anthropic_api.py BASE_URL KEY SCENARIO
Each scenario asserts what a user of the SDK would see and exits non-zero (with the
assertion's message) when something differs.
"""

import sys

import anthropic

BASE_URL, KEY, SCENARIO = sys.argv[1], sys.argv[2], sys.argv[3]
# The SDK sends the key as `x-api-key`, as Claude Code does with ANTHROPIC_API_KEY.
client = anthropic.Anthropic(api_key=KEY, base_url=BASE_URL, max_retries=0)
MODEL = "claude-sonnet-4-20250514"
QUESTION = [{"role": "user", "content": "What is the weather in Krakow?"}]
WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city.",
    "input_schema": {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        },
        "required": ["city", "unit"],
    },
}
RESULT = "sunny and 21 degrees"


def text():
    message = client.messages.create(model=MODEL, max_tokens=200, messages=QUESTION)
    assert message.type == "message" and message.role == "assistant", message
    assert message.id.startswith("msg_"), message.id
    assert message.stop_reason == "end_turn", message.stop_reason
    assert [b.type for b in message.content] == ["text"], message.content
    assert message.content[0].text, message.content
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0, message.usage


def stream():
    kinds = []
    with client.messages.stream(model=MODEL, max_tokens=200, messages=QUESTION) as events:
        streamed = ""
        for event in events:
            kinds.append(event.type)
            if event.type == "text":
                streamed += event.text
        final = events.get_final_message()
    assert kinds[0] == "message_start", kinds
    assert kinds[-1] == "message_stop", kinds
    assert "content_block_start" in kinds and "content_block_stop" in kinds, kinds
    assert streamed and final.content[0].text == streamed, (streamed, final.content)
    assert final.stop_reason == "end_turn", final.stop_reason
    assert final.usage.output_tokens > 0, final.usage
    # The emulator's answer opens with the model that gave it, which round-robin changes.
    whole = client.messages.create(model=MODEL, max_tokens=200, messages=QUESTION)
    unprefixed = whole.content[0].text.split("] ", 1)[1]
    assert unprefixed == streamed.split("] ", 1)[1], (whole.content, streamed)


def check_call(message):
    assert message.stop_reason == "tool_use", message
    calls = [b for b in message.content if b.type == "tool_use"]
    assert [c.name for c in calls] == ["get_weather"], message.content
    assert calls[0].id and calls[0].input["unit"] == "celsius", calls[0]
    assert "city" in calls[0].input, calls[0]
    return calls[0]


def answer_with_result(message, call, streaming):
    history = QUESTION + [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in message.content]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": call.id, "content": RESULT}],
        },
    ]
    if streaming:
        with client.messages.stream(
            model=MODEL, max_tokens=200, messages=history, tools=[WEATHER]
        ) as events:
            final = events.get_final_message()
    else:
        final = client.messages.create(model=MODEL, max_tokens=200, messages=history, tools=[WEATHER])
    assert final.stop_reason == "end_turn", final
    assert [b.type for b in final.content] == ["text"], final.content
    assert RESULT in final.content[0].text, final.content


def tool_loop():
    first = client.messages.create(model=MODEL, max_tokens=200, messages=QUESTION, tools=[WEATHER])
    call = check_call(first)
    answer_with_result(first, call, streaming=False)
    # The SDK assembles the streamed tool_use block from its input_json_delta pieces.
    with client.messages.stream(
        model=MODEL, max_tokens=200, messages=QUESTION, tools=[WEATHER]
    ) as events:
        deltas = [e for e in events if e.type == "input_json"]
        streamed = events.get_final_message()
    assert deltas, "no input_json_delta events"
    streamed_call = check_call(streamed)
    assert (streamed_call.id, streamed_call.input) == (call.id, call.input), (streamed_call, call)
    answer_with_result(streamed, streamed_call, streaming=True)


def errors():
    keyless = anthropic.Anthropic(api_key="wrong-key", base_url=BASE_URL, max_retries=0)
    try:
        keyless.messages.create(model=MODEL, max_tokens=10, messages=QUESTION)
        raise AssertionError("a wrong key was let in")
    except anthropic.AuthenticationError as error:
        assert error.status_code == 401, error
        assert error.body["type"] == "error", error.body
        assert error.body["error"]["type"] == "authentication_error", error.body
    try:
        client.messages.create(
            model=MODEL, max_tokens=10, messages=[{"role": "robot", "content": "hi"}]
        )
        raise AssertionError("a robot's turn was accepted")
    except anthropic.BadRequestError as error:
        assert error.body["error"]["type"] == "invalid_request_error", error.body
        assert error.body["error"]["message"].startswith("messages[0].role:"), error.body
    try:
        client.messages.count_tokens(model=MODEL, messages=[])
        raise AssertionError("count_tokens counted an empty conversation")
    except anthropic.BadRequestError as error:
        assert "at least one message" in error.body["error"]["message"], error.body


def bearer():
    # Claude Code's ANTHROPIC_AUTH_TOKEN goes out as `Authorization: Bearer`.
    token = anthropic.Anthropic(auth_token=KEY, base_url=BASE_URL, max_retries=0)
    message = token.messages.create(model=MODEL, max_tokens=50, messages=QUESTION)
    assert message.content[0].text, message


def twice():
    for _ in range(2):
        text()


def thinking():
    ask = dict(
        model=MODEL,
        max_tokens=4000,
        messages=QUESTION,
        thinking={"type": "enabled", "budget_tokens": 1024},
    )
    message = client.messages.create(**ask)
    assert [b.type for b in message.content] == ["thinking", "text"], message.content
    assert message.content[0].thinking and message.content[0].signature, message.content[0]
    kinds = set()
    with client.messages.stream(**ask) as events:
        for event in events:
            if event.type == "content_block_delta":
                kinds.add(event.delta.type)
        streamed = events.get_final_message()
    assert {"thinking_delta", "signature_delta", "text_delta"} <= kinds, kinds
    assert streamed.content[0].type == "thinking", streamed.content
    assert streamed.content[0].signature, streamed.content[0]
    # The thinking goes back with the tool loop, signature and all.
    first = client.messages.create(**ask, tools=[WEATHER])
    call = check_call(first)
    assert first.content[0].type == "thinking", first.content
    history = QUESTION + [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": RESULT}]},
    ]
    final = client.messages.create(**dict(ask, messages=history), tools=[WEATHER])
    assert final.stop_reason == "end_turn", final


def cache():
    system = [
        {
            "type": "text",
            "text": "You are a meticulous assistant. " * 40,
            "cache_control": {"type": "ephemeral"},
        }
    ]
    usages = [
        client.messages.create(model=MODEL, max_tokens=100, system=system, messages=QUESTION).usage
        for _ in range(3)
    ]
    assert usages[0].cache_creation_input_tokens > 0, usages[0]
    assert usages[0].cache_read_input_tokens == 0, usages[0]
    assert any(u.cache_read_input_tokens > 0 for u in usages[1:]), usages
    assert all(u.input_tokens > 0 for u in usages), usages


def cut_stream():
    # The upstream breaks after a few words: the SDK raises rather than return a cut answer.
    seen = ""
    try:
        with client.messages.stream(model=MODEL, max_tokens=200, messages=QUESTION) as events:
            for event in events:
                if event.type == "text":
                    seen += event.text
        raise AssertionError("a broken stream ended like a whole one")
    except anthropic.APIStatusError as error:
        # The SDK raises an `error` event as an APIStatusError carrying its body.
        assert seen, "the words before the break arrived first"
        assert error.body["type"] == "error", error.body
        assert error.body["error"]["type"] == "api_error", error.body
        assert "stream failed" in error.body["error"]["message"], error.body


def stops_and_tool_errors():
    # The emulator echoes the question, so "weather" ends the answer early.
    stopped = client.messages.create(
        model=MODEL, max_tokens=200, messages=QUESTION, stop_sequences=["weather"],
        extra_body={"top_k": 5},
    )
    assert stopped.stop_reason == "stop_sequence", stopped
    assert stopped.stop_sequence == "weather", stopped
    assert "weather" not in stopped.content[0].text, stopped.content
    with client.messages.stream(
        model=MODEL, max_tokens=200, messages=QUESTION, stop_sequences=["weather"]
    ) as events:
        final = events.get_final_message()
    assert (final.stop_reason, final.stop_sequence) == ("stop_sequence", "weather"), final
    # Bedrock does not say which of several sequences matched; aigw does not guess.
    either = client.messages.create(
        model=MODEL, max_tokens=200, messages=QUESTION, stop_sequences=["weather", "Krakow"]
    )
    assert (either.stop_reason, either.stop_sequence) == ("stop_sequence", None), either
    # A tool that failed: is_error travels with the result.
    first = client.messages.create(model=MODEL, max_tokens=200, messages=QUESTION, tools=[WEATHER])
    call = check_call(first)
    history = QUESTION + [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": call.id,
                    "content": "no such city",
                    "is_error": True,
                }
            ],
        },
    ]
    after = client.messages.create(model=MODEL, max_tokens=200, messages=history, tools=[WEATHER])
    assert after.stop_reason == "end_turn", after


def count_tokens():
    system = "Answer in one sentence."
    counted = client.messages.count_tokens(
        model=MODEL, system=system, messages=QUESTION, tools=[WEATHER]
    )
    answered = client.messages.create(
        model=MODEL, max_tokens=200, system=system, messages=QUESTION, tools=[WEATHER]
    )
    assert counted.input_tokens > 0, counted
    assert counted.input_tokens == answered.usage.input_tokens, (counted, answered.usage)


SCENARIOS = {
    "count_tokens": count_tokens,
    "stops_and_tool_errors": stops_and_tool_errors,
    "cut_stream": cut_stream,
    "thinking": thinking,
    "cache": cache,
    "text": text,
    "stream": stream,
    "tool_loop": tool_loop,
    "errors": errors,
    "bearer": bearer,
    "twice": twice,
}

SCENARIOS[SCENARIO]()
print("ok")
