"""POST /v1/embeddings through aigw with the official OpenAI Python SDK.

Run by tests/embeddings_api.rs against a gateway and a Bedrock emulator on loopback:
    python embeddings_api.py BASE_URL MODEL
Exits non-zero (with the assertion's message) when the SDK sees something other than
OpenAI's shapes: a list in the inputs' order, and base64 vectors (the SDK's default
encoding, decoded by the SDK itself) equal to the float ones.
"""

import sys

import openai

BASE_URL, MODEL = sys.argv[1], sys.argv[2]
client = openai.OpenAI(api_key="not-checked", base_url=BASE_URL, max_retries=0)
TEXTS = ["rust compilers check borrows", "bread rises in a warm oven"]

# The SDK asks for base64 unless told otherwise, and decodes it to floats.
batch = client.embeddings.create(model=MODEL, input=TEXTS)
assert [d.index for d in batch.data] == [0, 1], batch
assert batch.data[0].embedding != batch.data[1].embedding, batch

floats = client.embeddings.create(model=MODEL, input=TEXTS, encoding_format="float")
for encoded, plain in zip(batch.data, floats.data):
    assert len(encoded.embedding) == len(plain.embedding), (encoded, plain)
    assert all(abs(a - b) < 1e-6 for a, b in zip(encoded.embedding, plain.embedding))

alone = client.embeddings.create(model=MODEL, input=TEXTS[1], encoding_format="float")
assert alone.data[0].embedding == floats.data[1].embedding, "batch order"

try:
    client.embeddings.create(model=MODEL, input=[[1, 2, 3]])
except openai.BadRequestError as error:
    assert "input[0]" in str(error), error
else:
    raise AssertionError("token arrays were accepted")
print("ok")
