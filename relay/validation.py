"""Checks on a /v1 request body: clear 400s with `param` instead of upstream surprises.

Unknown top-level parameters are refused (a typo should not be silently ignored), except the
provider extensions listed here. Fields that would choose a destination or credentials are
refused anywhere in the body, nested too: a request never picks where its key is sent.
"""

from wire.adapters.rerank import MAX_DOCUMENTS as MAX_RERANK_DOCUMENTS
from wire.errors import InvalidRequest

COMMON = {"model", "user", "metadata", "stream", "stream_options", "extra_body"}
CHAT = COMMON | {
    "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "n", "stop", "presence_penalty",
    "frequency_penalty", "logit_bias", "logprobs", "top_logprobs", "response_format", "seed", "tools", "tool_choice",
    "parallel_tool_calls", "functions", "function_call", "service_tier", "store", "reasoning_effort", "modalities",
    "audio", "prediction", "web_search_options", "verbosity", "prompt_cache_key", "safety_identifier",
    # provider extensions (PROVIDERS.md): DeepSeek/GLM/Ark thinking, DashScope, vLLM-style samplers
    "thinking", "enable_thinking", "thinking_budget", "top_k", "min_p", "repetition_penalty", "enable_search",
}
COMPLETIONS = COMMON | {
    "prompt", "suffix", "max_tokens", "temperature", "top_p", "n", "stop", "presence_penalty", "frequency_penalty",
    "logit_bias", "logprobs", "echo", "best_of", "seed", "top_k",
}
EMBEDDINGS = {"model", "input", "encoding_format", "dimensions", "user"}
# The Cohere/Jina rerank request (wire.adapters.rerank); Cohere v1's rank_fields and chunking options are not taken.
RERANK = {"model", "query", "documents", "top_n", "return_documents", "max_tokens_per_doc"}
ALLOWED = {"chat": CHAT, "completions": COMPLETIONS, "embeddings": EMBEDDINGS, "rerank": RERANK}

# Names that choose where a request goes or with which credentials (OpenAI SDK client options,
# LiteLLM-style routing fields, header maps). An upstream that is itself a gateway may honour them,
# so none may appear as a field name anywhere in the body, whatever its case or separators.
FORBIDDEN = {
    "api_base", "base_url", "api_key", "api_version", "api_type", "api_host", "extra_headers", "headers",
    "default_headers", "authorization", "x_api_key", "x_goog_api_key", "proxy", "proxies", "azure_endpoint",
    "azure_deployment", "azure_ad_token", "azure_ad_token_provider", "aws_access_key_id", "aws_secret_access_key",
    "aws_session_token", "aws_region_name", "aws_profile_name", "aws_role_name", "aws_bedrock_runtime_endpoint",
    "vertex_credentials", "vertex_project", "vertex_location", "custom_llm_provider",
}


def normalised_name(name: str) -> str:
    """`API_BASE`, `apiBase` and `api-base` are all `apibase`."""
    return name.lower().replace("_", "").replace("-", "")


FORBIDDEN_NORMALISED = frozenset(map(normalised_name, FORBIDDEN))

# Where a JSON schema starts (a tool's parameters, a structured-output schema), and the schema
# keywords whose object maps names (property names, definition names) to subschemas: those names
# are the caller's own vocabulary (a tool may well take an `api_key` argument), not request fields.
SCHEMA_ROOTS = {("tools", "function", "parameters"), ("tools", "parameters"), ("functions", "parameters"),
                ("response_format", "json_schema", "schema"), ("tools", "input_schema"), ("output_config", "format", "schema"), ("output_format", "schema"),  # these three: Anthropic's
                ("text", "format", "schema")}  # the last: OpenAI Responses'
NAME_MAPS = {"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"}

# Work bounds: a body within the size limit can still hold millions of tiny nodes, and walking
# them would hold the event loop for hundreds of milliseconds (benchmarks/request_work.py).
MAX_DEPTH = 32
MAX_CONTAINERS = 10_000  # objects and arrays (128 tools with rich schemas and 5,000 messages fit)
MAX_MEMBERS = 30_000  # object members, whose names are each checked
MAX_ELEMENTS = 300_000  # array items (an embeddings request of 300,000 tokens, OpenAI's own limit, fits)
RAW_BRACKETS = 20 * MAX_CONTAINERS  # loose: brackets inside strings (code) count too
_CONTAINER_TYPES = frozenset({dict, list})
_verdicts: dict[str, bool] = {}  # field name -> forbidden; the same few names recur in every body


def check_raw(raw: bytes) -> None:
    """Before parsing: refuse a body whose bracket count alone exceeds what `check_body` would walk.

    Counting two bytes runs at memory speed; parsing millions of empty arrays does not (seconds).
    Brackets inside strings count too, so the bound is loose (RAW_BRACKETS, 20 per permitted container).
    """
    if raw.count(b"[") + raw.count(b"{") > RAW_BRACKETS:
        raise InvalidRequest(f"The request body has too many JSON objects and arrays (at most {MAX_CONTAINERS}).", code="request_too_complex")


def check_body(endpoint: str, body) -> None:
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    _check_no_destination(body)
    unknown = sorted(set(body) - ALLOWED[endpoint])
    if unknown:
        raise InvalidRequest(f"Unrecognized request argument supplied: {unknown[0]}", param=unknown[0], code="unknown_parameter")
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise InvalidRequest("You must provide a model parameter.", param="model", code="missing_required_parameter")
    if "\x00" in model or len(model) > 200:
        raise InvalidRequest("The model name is not valid.", param="model")
    _check_type(body, "stream", bool)
    _check_type(body, "stream_options", dict)
    _check_type(body, "user", str)
    if endpoint == "chat":
        _check_messages(body.get("messages"))
        _check_type(body, "tools", list)
    elif endpoint == "rerank":
        _check_rerank(body)
    elif endpoint == "completions":
        prompt = body.get("prompt")
        if not isinstance(prompt, (str, list)):
            raise InvalidRequest("'prompt' must be a string or an array.", param="prompt", code="missing_required_parameter")
    else:
        value = body.get("input")
        if not isinstance(value, (str, list)) or (isinstance(value, list) and not value):
            raise InvalidRequest("'input' must be a string or a non-empty array.", param="input", code="missing_required_parameter")
    for name in ("max_tokens", "max_completion_tokens", "n", "seed", "top_logprobs", "dimensions", "top_n", "max_tokens_per_doc"):
        _check_int(body, name, minimum=0 if name == "seed" else 1)
    _check_number(body, "temperature", 0, 2)
    _check_number(body, "top_p", 0, 1)
    _check_number(body, "presence_penalty", -2, 2)
    _check_number(body, "frequency_penalty", -2, 2)
    stop = body.get("stop")
    if stop is not None and not isinstance(stop, str) and not (isinstance(stop, list) and all(isinstance(s, str) for s in stop)):
        raise InvalidRequest("'stop' must be a string or an array of strings.", param="stop")


class _Walk:
    """One pass over the body: forbidden names anywhere (outside schema name maps), bounded work."""

    __slots__ = ("containers", "members", "elements", "trail")

    def __init__(self):
        self.containers = self.members = self.elements = 0
        self.trail: list = []

    def visit(self, value, depth: int, schema: bool) -> None:
        self.containers += 1
        if depth > MAX_DEPTH:
            raise InvalidRequest("The request body is nested too deeply.", code="request_too_complex")
        trail = self.trail
        if isinstance(value, dict):
            self.members += len(value)
            self._bound()
            names_only = schema and trail and trail[-1] in NAME_MAPS
            for key, item in value.items():
                forbidden = _verdicts.get(key)
                if forbidden is None:
                    forbidden = normalised_name(key) in FORBIDDEN_NORMALISED
                    if len(_verdicts) < 4096:
                        _verdicts[key] = forbidden
                if forbidden and not names_only:
                    trail.append(key)
                    where = self.path()
                    raise InvalidRequest(
                        f"'{where}' is not accepted: destinations, credentials and headers are set by the gateway.",
                        param=where, code="forbidden_parameter",
                    )
                if type(item) in _CONTAINER_TYPES:
                    trail.append(key)
                    self.visit(item, depth + 1, schema or (depth <= 3 and self.schema_root()))
                    trail.pop()
            return
        self.elements += len(value)
        self._bound()
        if value and not _CONTAINER_TYPES.isdisjoint(map(type, value)):  # arrays of scalars: no walk
            for index, item in enumerate(value):
                if type(item) in _CONTAINER_TYPES:
                    trail.append(index)
                    self.visit(item, depth + 1, schema)
                    trail.pop()

    def _bound(self) -> None:
        if self.containers > MAX_CONTAINERS or self.members > MAX_MEMBERS or self.elements > MAX_ELEMENTS:
            raise InvalidRequest(
                f"The request body has too many JSON values (at most {MAX_CONTAINERS} objects and arrays, "
                f"{MAX_MEMBERS} object members and {MAX_ELEMENTS} array items).", code="request_too_complex",
            )

    def schema_root(self) -> bool:
        names = tuple(part for part in self.trail if isinstance(part, str))
        return names in SCHEMA_ROOTS and len(self.trail) <= 4

    def path(self) -> str:
        text = ""
        for part in self.trail:
            text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
        return text


def check_no_destination(body: dict) -> None:
    _Walk().visit(body, 0, False)


_check_no_destination = check_no_destination


def _check_messages(messages) -> None:
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("'messages' must be a non-empty array.", param="messages", code="missing_required_parameter")
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise InvalidRequest(f"'messages[{index}]' must be an object.", param=f"messages[{index}]")
        role = message.get("role")
        if role not in ("system", "developer", "user", "assistant", "tool", "function"):
            raise InvalidRequest(f"'messages[{index}].role' must be one of system, developer, user, assistant, tool.", param=f"messages[{index}].role")
        content = message.get("content")
        if content is not None and not isinstance(content, (str, list)):
            raise InvalidRequest(f"'messages[{index}].content' must be a string or an array.", param=f"messages[{index}].content")


def _check_rerank(body: dict) -> None:
    query = body.get("query")
    if not isinstance(query, str) or not query.strip():
        raise InvalidRequest("'query' must be a non-empty string.", param="query", code="missing_required_parameter")
    documents = body.get("documents")
    if not isinstance(documents, list) or not documents:
        raise InvalidRequest("'documents' must be a non-empty array.", param="documents", code="missing_required_parameter")
    if len(documents) > MAX_RERANK_DOCUMENTS:
        raise InvalidRequest(f"'documents' may hold at most {MAX_RERANK_DOCUMENTS} documents.", param="documents", code="invalid_value")
    for index, document in enumerate(documents):
        if not isinstance(document, str) and not (isinstance(document, dict) and isinstance(document.get("text"), str)):
            raise InvalidRequest(f"'documents[{index}]' must be a string or an object with a string 'text'.", param=f"documents[{index}]")
    _check_type(body, "return_documents", bool)


def _check_type(body: dict, name: str, kind) -> None:
    value = body.get(name)
    if value is not None and not isinstance(value, kind):
        raise InvalidRequest(f"'{name}' has the wrong type.", param=name, code="invalid_type")


def _check_int(body: dict, name: str, minimum: int) -> None:
    value = body.get(name)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum or value > 10_000_000:
        raise InvalidRequest(f"'{name}' must be an integer >= {minimum}.", param=name, code="invalid_value")


def _check_number(body: dict, name: str, low: float, high: float) -> None:
    value = body.get(name)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise InvalidRequest(f"'{name}' must be a number between {low} and {high}.", param=name, code="invalid_value")
