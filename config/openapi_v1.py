"""The `/v1` gateway in the OpenAPI schema (/api/schema/, /api/docs/).

The relay is a raw ASGI app and /v1/files, /v1/batches are plain Django views, so drf-spectacular sees none
of them; this postprocessing hook adds them. The paths are written here as data, not read from the relay's
routing tables, so building the schema loads no relay code; tests/test_openapi_v1.py holds the two together.
Bodies are compact: the fields Tollgate reads or routes on, not the providers' whole specifications.
"""

TAG = "v1 gateway (OpenAI/Anthropic compatible)"
TAG_DESCRIPTION = (
    "The OpenAI- and Anthropic-compatible gateway, authenticated by a virtual key. Errors are OpenAI's JSON "
    "envelope, but on /v1/messages and /v1/messages/count_tokens, which answer in Anthropic's error shape."
)
BEARER = "VirtualKey"
X_API_KEY = "VirtualKeyXApiKey"

SECURITY_SCHEMES = {
    BEARER: {"type": "http", "scheme": "bearer", "description": "A virtual key (tg-…) as `Authorization: Bearer`."},
    X_API_KEY: {"type": "apiKey", "in": "header", "name": "x-api-key", "description": "A virtual key in Anthropic's `x-api-key` header."},
}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(required: tuple[str, ...] = (), **properties) -> dict:
    schema = {"type": "object", "properties": properties, "additionalProperties": True}
    if required:
        schema["required"] = list(required)
    return schema


STRING, INTEGER, NUMBER, BOOLEAN = {"type": "string"}, {"type": "integer"}, {"type": "number"}, {"type": "boolean"}
ANY_OBJECT = {"type": "object", "additionalProperties": True}
TEXT_OR_LIST = {"oneOf": [STRING, {"type": "array", "items": {}}]}

SCHEMAS = {
    "V1Error": _obj(
        ("error",),
        error=_obj(("message", "type"), message=STRING, type=STRING, param={"type": "string", "nullable": True}, code={"type": "string", "nullable": True}),
    ),
    "V1AnthropicError": _obj(
        ("type", "error"), type={"type": "string", "enum": ["error"]}, error=_obj(("type", "message"), type=STRING, message=STRING), request_id=STRING,
    ),
    "V1ChatCompletionRequest": _obj(
        ("model", "messages"),
        model={"type": "string", "description": "A model name configured in Tollgate."},
        messages={"type": "array", "items": _obj(("role",), role=STRING, content=TEXT_OR_LIST)},
        stream=BOOLEAN, max_tokens=INTEGER, max_completion_tokens=INTEGER, temperature=NUMBER, top_p=NUMBER,
        tools={"type": "array", "items": ANY_OBJECT}, tool_choice={}, response_format=ANY_OBJECT, user=STRING,
    ),
    "V1CompletionRequest": _obj(("model", "prompt"), model=STRING, prompt=TEXT_OR_LIST, stream=BOOLEAN, max_tokens=INTEGER, temperature=NUMBER),
    "V1EmbeddingRequest": _obj(("model", "input"), model=STRING, input=TEXT_OR_LIST, encoding_format={"type": "string", "enum": ["float", "base64"]}, dimensions=INTEGER),
    "V1RerankRequest": _obj(
        ("model", "query", "documents"),
        model=STRING, query=STRING, documents={"type": "array", "items": {"oneOf": [STRING, ANY_OBJECT]}}, top_n=INTEGER, return_documents=BOOLEAN,
    ),
    "V1MessagesRequest": _obj(
        ("model", "messages", "max_tokens"),
        model=STRING, messages={"type": "array", "items": _obj(("role", "content"), role=STRING, content=TEXT_OR_LIST)},
        max_tokens=INTEGER, system=TEXT_OR_LIST, stream=BOOLEAN, temperature=NUMBER, tools={"type": "array", "items": ANY_OBJECT},
        tool_choice=ANY_OBJECT, thinking=ANY_OBJECT, stop_sequences={"type": "array", "items": STRING},
    ),
    "V1CountTokensRequest": _obj(("model", "messages"), model=STRING, messages={"type": "array", "items": ANY_OBJECT}, system=TEXT_OR_LIST, tools={"type": "array", "items": ANY_OBJECT}),
    "V1ResponsesRequest": _obj(
        ("model", "input"),
        model=STRING, input=TEXT_OR_LIST, instructions=STRING, previous_response_id=STRING, store=BOOLEAN, stream=BOOLEAN,
        max_output_tokens=INTEGER, temperature=NUMBER, tools={"type": "array", "items": ANY_OBJECT},
    ),
    "V1FileUpload": _obj(("file", "purpose"), file={"type": "string", "format": "binary", "description": "A JSONL file of batch requests."}, purpose={"type": "string", "enum": ["batch"]}),
    "V1BatchRequest": _obj(
        ("input_file_id", "endpoint", "completion_window"),
        input_file_id=STRING, endpoint={"type": "string", "example": "/v1/chat/completions"}, completion_window={"type": "string", "enum": ["24h"]}, metadata=ANY_OBJECT,
        tollgate_cap={"type": "string", "example": "5.00", "description": "Tollgate: the most the batch may spend (default: the key's remaining budget)."},
        tollgate_mode={"type": "string", "enum": ["relay", "native"], "description": "Tollgate: run the lines through the relay, or as the provider's own batch."},
    ),
}

_ERRORS = {"400": "Invalid request", "401": "Missing, wrong, expired or revoked virtual key", "404": "Not found", "405": "Method not allowed", "429": "Rate limit or budget reached"}
_HEADER = {"schema": STRING}
# What the relay adds to a relayed answer (relay/pipeline.py, relay/response_cache.py).
RELAYED_HEADERS = {
    "x-tollgate-model": {**_HEADER, "description": "The Tollgate model that answered."},
    "x-tollgate-deployment": {**_HEADER, "description": "The id of the deployment that answered."},
    "x-tollgate-attempts": {"schema": INTEGER, "description": "Upstream attempts made (retries and fallbacks included)."},
    "x-tollgate-cache": {"schema": {"type": "string", "enum": ["hit", "miss", "bypass"]}, "description": "The response cache's verdict, when the model caches."},
    "x-request-id": {**_HEADER, "description": "Tollgate's id for this request."},
}
IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key", "in": "header", "required": False, "schema": STRING,
    "description": "A retry with the same key gets the stored answer, with no second upstream call or charge.",
}


def _operation(summary: str, *, body: str | None = None, relayed: bool = False, anthropic: bool = False,
               params: tuple[str, ...] = (), multipart: bool = False, query: tuple[str, ...] = ()) -> dict:
    security = [{BEARER: []}, {X_API_KEY: []}] if anthropic else [{BEARER: []}]
    ok = {"description": "The provider-format answer (JSON, or server-sent events when `stream` is true)." if relayed else "OK",
          "content": {"application/json": {"schema": ANY_OBJECT}}}
    if relayed:
        ok["headers"] = RELAYED_HEADERS
        ok["content"]["text/event-stream"] = {"schema": STRING}
    error = {"content": {"application/json": {"schema": _ref("V1AnthropicError" if anthropic else "V1Error")}}}
    operation = {
        "tags": [TAG],
        "summary": summary,
        "security": security,
        "responses": {"200": ok, **{status: {"description": text, **error} for status, text in _ERRORS.items()}},
    }
    parameters = [{"name": name, "in": "path", "required": True, "schema": STRING} for name in params]
    parameters += [{"name": name, "in": "query", "required": False, "schema": STRING} for name in query]
    if relayed:
        parameters.append(IDEMPOTENCY_KEY)
    if parameters:
        operation["parameters"] = parameters
    if body:
        media = "multipart/form-data" if multipart else "application/json"
        operation["requestBody"] = {"required": True, "content": {media: {"schema": _ref(body)}}}
    return operation


PAGE = ("limit", "after", "order")

PATHS = {
    "/v1/chat/completions": {"post": _operation("Chat completion (OpenAI chat completions format)", body="V1ChatCompletionRequest", relayed=True)},
    "/v1/completions": {"post": _operation("Text completion (OpenAI legacy completions format)", body="V1CompletionRequest", relayed=True)},
    "/v1/embeddings": {"post": _operation("Embeddings (OpenAI embeddings format)", body="V1EmbeddingRequest", relayed=True)},
    "/v1/rerank": {"post": _operation("Rerank documents (Cohere/Jina rerank format)", body="V1RerankRequest", relayed=True)},
    "/v1/models": {"get": _operation("List the models this key may use (OpenAI models format)")},
    "/v1/models/{model}": {"get": _operation("One model (OpenAI models format)", params=("model",))},
    "/v1/messages": {"post": _operation("Message (Anthropic Messages format)", body="V1MessagesRequest", relayed=True, anthropic=True)},
    "/v1/messages/count_tokens": {"post": _operation("Count a message's tokens (Anthropic count_tokens format)", body="V1CountTokensRequest", relayed=True, anthropic=True)},
    "/v1/responses": {"post": _operation("Create a response (OpenAI Responses format)", body="V1ResponsesRequest", relayed=True)},
    "/v1/responses/{response_id}": {
        "get": _operation("A stored response (OpenAI Responses format)", params=("response_id",)),
        "delete": _operation("Delete a stored response (OpenAI Responses format)", params=("response_id",)),
    },
    "/v1/responses/{response_id}/input_items": {"get": _operation("A stored response's input items (OpenAI Responses format)", params=("response_id",), query=PAGE)},
    "/v1/files": {
        "get": _operation("List files (OpenAI Files format)", query=(*PAGE, "purpose")),
        "post": _operation("Upload a batch input file (OpenAI Files format)", body="V1FileUpload", multipart=True),
    },
    "/v1/files/{file_id}": {
        "get": _operation("One file (OpenAI Files format)", params=("file_id",)),
        "delete": _operation("Delete a file (OpenAI Files format)", params=("file_id",)),
    },
    "/v1/files/{file_id}/content": {"get": _operation("A file's content (OpenAI Files format)", params=("file_id",))},
    "/v1/batches": {
        "get": _operation("List batches (OpenAI Batch format)", query=PAGE),
        "post": _operation("Create a batch (OpenAI Batch format)", body="V1BatchRequest"),
    },
    "/v1/batches/{batch_id}": {"get": _operation("One batch (OpenAI Batch format)", params=("batch_id",))},
    "/v1/batches/{batch_id}/cancel": {"post": _operation("Cancel a batch (OpenAI Batch format)", params=("batch_id",))},
    "/v1/batches/{batch_id}/pause": {"post": _operation("Pause a batch (Tollgate extension of the OpenAI Batch format)", params=("batch_id",))},
    "/v1/batches/{batch_id}/resume": {"post": _operation("Resume a paused batch (Tollgate extension of the OpenAI Batch format)", params=("batch_id",))},
}

for _path, _operations in PATHS.items():
    for _method, _op in _operations.items():  # e.g. v1_batches_cancel_post: unique, as Swagger UI's links need
        _op["operationId"] = "_".join(part.strip("{}") for part in _path.strip("/").split("/")) + "_" + _method


def add_v1_paths(result, generator, request, public):
    """drf-spectacular postprocessing hook: the /v1 gateway's operations, schemas and security schemes."""
    result.setdefault("paths", {}).update(PATHS)
    components = result.setdefault("components", {})
    components.setdefault("schemas", {}).update(SCHEMAS)
    components.setdefault("securitySchemes", {}).update(SECURITY_SCHEMES)
    result.setdefault("tags", []).append({"name": TAG, "description": TAG_DESCRIPTION})
    return result
