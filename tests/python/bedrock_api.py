"""Bedrock Runtime's native API through aigw with boto3's `bedrock-runtime` client.

Run by tests/bedrock_api.rs against a gateway route with `llm_format: bedrock` and a
Bedrock emulator on loopback:
    python bedrock_api.py ENDPOINT_URL KEY SCENARIO [ACCESS_KEY_ID SECRET_ACCESS_KEY]
Only `endpoint_url` changes from code that calls Bedrock itself; the consumer's key goes
out in an `apikey` header added by an event hook, or, in the sigv4 scenarios, boto3 signs
with a consumer's AWS key pair and sends nothing else. Each scenario asserts what a user
of boto3 would see and exits non-zero (with the assertion's message) when something
differs.
"""

import json
import sys

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError, EventStreamError

ENDPOINT_URL, KEY, SCENARIO = sys.argv[1], sys.argv[2], sys.argv[3]
PAIR = sys.argv[4:6]
MODEL = "us.anthropic.claude-sonnet-4-20250514-v1:0"
QUESTION = [{"role": "user", "content": [{"text": "What is the weather in Krakow?"}]}]
WEATHER = {
    "toolSpec": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "inputSchema": {
            "json": {
                "type": "object",
                "properties": {
                    "city": {"type": "string"},
                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                },
                "required": ["city", "unit"],
            }
        },
    }
}
RESULT = "sunny and 21 degrees"


def make_client(key=KEY):
    client = boto3.client(
        "bedrock-runtime",
        endpoint_url=ENDPOINT_URL,
        region_name="us-west-2",
        aws_access_key_id="AKIDBOTO3CLIENT",
        aws_secret_access_key="not-a-real-secret",
        # One attempt: a retry would hide what the gateway answered.
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )

    def add_key(request, **_):
        request.headers["apikey"] = key

    client.meta.events.register("before-sign.bedrock-runtime", add_key)
    return client


client = make_client()


def text():
    answer = client.converse(
        modelId=MODEL, messages=QUESTION, inferenceConfig={"maxTokens": 200, "temperature": 0.5}
    )
    assert answer["stopReason"] == "end_turn", answer
    content = answer["output"]["message"]["content"]
    assert answer["output"]["message"]["role"] == "assistant", answer
    assert len(content) == 1 and content[0]["text"], content
    usage = answer["usage"]
    assert usage["inputTokens"] > 0 and usage["outputTokens"] > 0, usage
    assert usage["totalTokens"] == usage["inputTokens"] + usage["outputTokens"], usage


def tool_loop():
    tools = {"tools": [WEATHER]}
    first = client.converse(modelId=MODEL, messages=QUESTION, toolConfig=tools)
    assert first["stopReason"] == "tool_use", first
    turn = first["output"]["message"]
    calls = [b["toolUse"] for b in turn["content"] if "toolUse" in b]
    assert [c["name"] for c in calls] == ["get_weather"], turn
    assert calls[0]["toolUseId"] and calls[0]["input"]["unit"] == "celsius", calls
    history = QUESTION + [
        turn,
        {
            "role": "user",
            "content": [
                {"toolResult": {"toolUseId": calls[0]["toolUseId"], "content": [{"text": RESULT}]}}
            ],
        },
    ]
    final = client.converse(modelId=MODEL, messages=history, toolConfig=tools)
    assert final["stopReason"] == "end_turn", final
    content = final["output"]["message"]["content"]
    assert RESULT in content[0]["text"], content


def stream():
    kinds, text = [], ""
    response = client.converse_stream(modelId=MODEL, messages=QUESTION)
    for event in response["stream"]:
        (kind,) = event.keys()
        kinds.append(kind)
        if kind == "contentBlockDelta":
            text += event[kind]["delta"]["text"]
        if kind == "messageStop":
            assert event[kind]["stopReason"] == "end_turn", event
        if kind == "metadata":
            assert event[kind]["usage"]["outputTokens"] > 0, event
    assert kinds[0] == "messageStart" and kinds[-2:] == ["messageStop", "metadata"], kinds
    assert "contentBlockStop" in kinds and text, (kinds, text)
    whole = client.converse(modelId=MODEL, messages=QUESTION)["output"]["message"]["content"]
    # The emulator's answer opens with the model that gave it, which round-robin changes.
    assert whole[0]["text"].split("] ", 1)[1] == text.split("] ", 1)[1], (whole, text)


def stream_tool():
    response = client.converse_stream(
        modelId=MODEL, messages=QUESTION, toolConfig={"tools": [WEATHER]}
    )
    starts, pieces, stop = [], "", None
    for event in response["stream"]:
        if "contentBlockStart" in event:
            starts.append(event["contentBlockStart"]["start"]["toolUse"])
        delta = event.get("contentBlockDelta", {}).get("delta", {})
        pieces += delta.get("toolUse", {}).get("input", "")
        stop = event.get("messageStop", {}).get("stopReason", stop)
    assert [s["name"] for s in starts] == ["get_weather"] and starts[0]["toolUseId"], starts
    assert json.loads(pieces)["unit"] == "celsius", pieces
    assert stop == "tool_use", stop


def broken_stream():
    response = client.converse_stream(modelId=MODEL, messages=QUESTION)
    try:
        for _ in response["stream"]:
            pass
        raise AssertionError("a broken stream ended as if whole")
    # botocore raises a stream's exception event as EventStreamError, coded by the
    # frame's `:exception-type`, as it does with Bedrock itself.
    except EventStreamError as error:
        assert error.response["Error"]["Code"] == "modelStreamErrorException", error.response
        assert "emulated stream exception" in error.response["Error"]["Message"], error.response


def cache():
    system = [{"text": "You are a meticulous assistant. " * 40}, {"cachePoint": {"type": "default"}}]
    usages = [
        client.converse(modelId=MODEL, system=system, messages=QUESTION)["usage"] for _ in range(3)
    ]
    assert usages[0]["cacheWriteInputTokens"] > 0, usages[0]
    assert usages[0]["cacheReadInputTokens"] == 0, usages[0]
    assert any(u["cacheReadInputTokens"] > 0 for u in usages[1:]), usages
    for u in usages:
        cached = u["cacheReadInputTokens"] + u["cacheWriteInputTokens"]
        assert u["inputTokens"] > 0, u
        assert u["totalTokens"] == u["inputTokens"] + u["outputTokens"] + cached, u


def throttled():
    try:
        client.converse(modelId=MODEL, messages=QUESTION)
        raise AssertionError("a throttled request was answered")
    except client.exceptions.ThrottlingException as error:
        assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 429, error.response
        assert error.response["Error"]["Message"], error.response


def invalid():
    try:
        client.converse(
            modelId=MODEL,
            messages=QUESTION,
            additionalModelResponseFieldPaths=["/stop_sequence"],
        )
        raise AssertionError("additionalModelResponseFieldPaths was accepted")
    except client.exceptions.ValidationException as error:
        assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 400, error.response
        message = error.response["Error"]["Message"]
        assert message.startswith("additionalModelResponseFieldPaths:"), message
    try:
        client.converse(modelId=MODEL, messages=[])
        raise AssertionError("an empty conversation was accepted")
    except client.exceptions.ValidationException as error:
        assert "messages" in error.response["Error"]["Message"], error.response


def wrong_key():
    try:
        make_client("wrong-key").converse(modelId=MODEL, messages=QUESTION)
        raise AssertionError("a wrong key was let in")
    except client.exceptions.ClientError as error:
        code = error.response["Error"]["Code"]
        assert code == "UnrecognizedClientException", error.response
        assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 401, error.response


def signed_client(secret):
    """A client as AWS's own docs write it, with a consumer's key pair and no key header."""
    return boto3.client(
        "bedrock-runtime",
        endpoint_url=ENDPOINT_URL,
        region_name="us-east-1",
        aws_access_key_id=PAIR[0],
        aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )


# A model id with `:`, which boto3 sends as `%3A` and signs double-encoded (`%253A`).
COLON_MODEL = "anthropic.claude-3-5-sonnet-20240620-v1:0"


def sigv4():
    signed = signed_client(PAIR[1])
    answer = signed.converse(modelId=COLON_MODEL, messages=QUESTION)
    assert answer["stopReason"] == "end_turn", answer
    assert answer["output"]["message"]["content"][0]["text"], answer
    text, stop = "", None
    for event in signed.converse_stream(modelId=COLON_MODEL, messages=QUESTION)["stream"]:
        text += event.get("contentBlockDelta", {}).get("delta", {}).get("text", "")
        stop = event.get("messageStop", {}).get("stopReason", stop)
    assert text and stop == "end_turn", (text, stop)


def expect_refused(call, code, status):
    try:
        call()
        raise AssertionError(f"let in where {code} was expected")
    except ClientError as error:
        assert error.response["Error"]["Code"] == code, error.response
        assert error.response["ResponseMetadata"]["HTTPStatusCode"] == status, error.response
        return error.response["Error"]["Message"]


def sigv4_wrong_secret():
    signed = signed_client(PAIR[1] + "-wrong")
    for call in (signed.converse, signed.converse_stream):
        message = expect_refused(
            lambda: call(modelId=COLON_MODEL, messages=QUESTION), "InvalidSignatureException", 403
        )
        assert "signature we calculated does not match" in message, message
        assert PAIR[1] not in message, message


def sigv4_denied():
    """The consumer whose pair signed is the one acl checks: its group is denied."""
    message = expect_refused(
        lambda: signed_client(PAIR[1]).converse(modelId=COLON_MODEL, messages=QUESTION),
        "AccessDeniedException",
        403,
    )
    assert "cannot consume" in message, message


def twice():
    for _ in range(2):
        answer = client.converse(modelId=MODEL, messages=QUESTION)
        assert answer["stopReason"] == "end_turn", answer


def stops_and_tool_errors():
    # The emulator echoes the question, so "weather" ends the answer early.
    config = {"maxTokens": 200, "stopSequences": ["weather"]}
    stopped = client.converse(
        modelId=MODEL,
        messages=QUESTION,
        inferenceConfig=config,
        additionalModelRequestFields={"top_k": 5},
    )
    assert stopped["stopReason"] == "stop_sequence", stopped
    response = client.converse_stream(modelId=MODEL, messages=QUESTION, inferenceConfig=config)
    stops = [e["messageStop"]["stopReason"] for e in response["stream"] if "messageStop" in e]
    assert stops == ["stop_sequence"], stops
    # A tool that failed: toolResult.status travels with the result.
    tools = {"tools": [WEATHER]}
    first = client.converse(modelId=MODEL, messages=QUESTION, toolConfig=tools)
    turn = first["output"]["message"]
    call = next(b["toolUse"] for b in turn["content"] if "toolUse" in b)
    failed = {
        "toolResult": {
            "toolUseId": call["toolUseId"],
            "content": [{"text": "no such city"}],
            "status": "error",
        }
    }
    history = QUESTION + [turn, {"role": "user", "content": [failed]}]
    after = client.converse(modelId=MODEL, messages=history, toolConfig=tools)
    assert after["stopReason"] == "end_turn", after


def guardrail():
    answer = client.converse(
        modelId=MODEL,
        messages=QUESTION,
        guardrailConfig={"guardrailIdentifier": "gr-1", "guardrailVersion": "1"},
    )
    assert answer["stopReason"] == "guardrail_intervened", answer


CLAUDE_BODY = {
    "anthropic_version": "bedrock-2023-05-31",
    "max_tokens": 200,
    "messages": [{"role": "user", "content": "What is the weather in Krakow?"}],
}


def invoke():
    """InvokeModel with Anthropic Claude's own body, whole and streamed."""
    answer = client.invoke_model(modelId=MODEL, body=json.dumps(CLAUDE_BODY))
    message = json.loads(answer["body"].read())
    assert message["type"] == "message" and message["role"] == "assistant", message
    assert message["stop_reason"] == "end_turn", message
    text = message["content"][0]["text"]
    assert text, message
    headers = answer["ResponseMetadata"]["HTTPHeaders"]
    tokens = int(headers["x-amzn-bedrock-output-token-count"])
    assert tokens == message["usage"]["output_tokens"] > 0, (headers, message["usage"])

    streamed = client.invoke_model_with_response_stream(modelId=MODEL, body=json.dumps(CLAUDE_BODY))
    events = [json.loads(e["chunk"]["bytes"]) for e in streamed["body"]]
    kinds = [e["type"] for e in events]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop", kinds
    assert "ping" not in kinds, kinds
    pieces = [e["delta"]["text"] for e in events if e["type"] == "content_block_delta"]
    # The emulator's answer opens with the model that gave it, which round-robin changes.
    assert "".join(pieces).split("] ", 1)[1] == text.split("] ", 1)[1], (pieces, text)
    metrics = events[-1]["amazon-bedrock-invocationMetrics"]
    assert metrics["outputTokenCount"] > 0, metrics

    # Another model family's body is refused by name rather than guessed at.
    try:
        client.invoke_model(modelId=MODEL, body=json.dumps({"inputText": "hi"}))
        raise AssertionError("a body without anthropic_version was accepted")
    except client.exceptions.ValidationException as error:
        assert "anthropic_version" in error.response["Error"]["Message"], error.response


def count_tokens():
    """CountTokens, of a Converse input and of Claude's InvokeModel body, as Bedrock counts
    the same prompt when it answers it."""
    answered = client.converse(modelId=MODEL, messages=QUESTION)
    converse = client.count_tokens(modelId=MODEL, input={"converse": {"messages": QUESTION}})
    assert converse["inputTokens"] == answered["usage"]["inputTokens"] > 0, (converse, answered)
    invoke = client.count_tokens(
        modelId=MODEL, input={"invokeModel": {"body": json.dumps(CLAUDE_BODY)}}
    )
    assert invoke["inputTokens"] == converse["inputTokens"], (invoke, converse)


def anthropic_bedrock():
    """The anthropic SDK's Bedrock client (what Claude Code uses with
    CLAUDE_CODE_USE_BEDROCK) signing with a consumer's AWS key pair."""
    import anthropic

    bedrock = anthropic.AnthropicBedrock(
        aws_access_key=PAIR[0],
        aws_secret_key=PAIR[1],
        aws_region="us-west-2",
        base_url=ENDPOINT_URL,
        max_retries=0,
    )
    weather = {
        "name": "get_weather",
        "description": "The weather in a city.",
        "input_schema": WEATHER["toolSpec"]["inputSchema"]["json"],
    }
    question = CLAUDE_BODY["messages"]
    first = bedrock.messages.create(model=COLON_MODEL, max_tokens=200, messages=question, tools=[weather])
    assert first.stop_reason == "tool_use", first
    call = next(b for b in first.content if b.type == "tool_use")
    assert call.name == "get_weather" and call.input["unit"] == "celsius", call
    history = question + [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": RESULT}]},
    ]
    with bedrock.messages.stream(
        model=COLON_MODEL, max_tokens=200, messages=history, tools=[weather]
    ) as events:
        final = events.get_final_message()
    assert final.stop_reason == "end_turn", final
    assert RESULT in final.content[0].text, final.content
    try:
        bedrock.messages.create(model=COLON_MODEL, max_tokens=10, messages=[])
        raise AssertionError("an empty conversation was accepted")
    except anthropic.BadRequestError as error:
        assert error.status_code == 400, error


{
    "invoke": invoke,
    "count_tokens": count_tokens,
    "anthropic_bedrock": anthropic_bedrock,
    "stops_and_tool_errors": stops_and_tool_errors,
    "guardrail": guardrail,
    "text": text,
    "tool_loop": tool_loop,
    "throttled": throttled,
    "invalid": invalid,
    "wrong_key": wrong_key,
    "twice": twice,
    "stream": stream,
    "cache": cache,
    "stream_tool": stream_tool,
    "broken_stream": broken_stream,
    "sigv4": sigv4,
    "sigv4_wrong_secret": sigv4_wrong_secret,
    "sigv4_denied": sigv4_denied,
}[SCENARIO]()
