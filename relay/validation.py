"""Checks on a /v1 request body: clear 400s with `param` instead of upstream surprises.

Unknown top-level parameters are refused (a typo should not be silently ignored), except the
provider extensions listed here. Fields that would choose a destination or credentials are
refused anywhere in the body, nested too: a request never picks where its key is sent.
"""

from relay.errors import InvalidRequest

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
ALLOWED = {"chat": CHAT, "completions": COMPLETIONS, "embeddings": EMBEDDINGS}

FORBIDDEN = {
    "api_base", "base_url", "api_key", "api_version", "api_type", "extra_headers", "headers", "default_headers",
    "proxy", "proxies", "azure_endpoint", "azure_ad_token", "aws_access_key_id", "aws_secret_access_key",
    "aws_session_token", "vertex_credentials", "vertex_project", "custom_llm_provider",
}
MAX_DEPTH = 32


def check_body(endpoint: str, body) -> None:
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    _check_no_destination(body, "", 0)
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
    elif endpoint == "completions":
        prompt = body.get("prompt")
        if not isinstance(prompt, (str, list)):
            raise InvalidRequest("'prompt' must be a string or an array.", param="prompt", code="missing_required_parameter")
    else:
        value = body.get("input")
        if not isinstance(value, (str, list)) or (isinstance(value, list) and not value):
            raise InvalidRequest("'input' must be a string or a non-empty array.", param="input", code="missing_required_parameter")
    for name in ("max_tokens", "max_completion_tokens", "n", "seed", "top_logprobs", "dimensions"):
        _check_int(body, name, minimum=0 if name == "seed" else 1)
    _check_number(body, "temperature", 0, 2)
    _check_number(body, "top_p", 0, 1)
    _check_number(body, "presence_penalty", -2, 2)
    _check_number(body, "frequency_penalty", -2, 2)
    stop = body.get("stop")
    if stop is not None and not isinstance(stop, str) and not (isinstance(stop, list) and all(isinstance(s, str) for s in stop)):
        raise InvalidRequest("'stop' must be a string or an array of strings.", param="stop")


def _check_no_destination(value, path: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise InvalidRequest("The request body is nested too deeply.")
    if isinstance(value, dict):
        for key, item in value.items():
            # Inside a JSON schema (tools, response_format) these are ordinary property names.
            if key in FORBIDDEN and not (path.endswith("properties") or path.startswith(("tools", "functions"))):
                where = f"{path}.{key}" if path else key
                raise InvalidRequest(f"'{where}' is not accepted: destinations and credentials are set by the gateway.", param=where, code="forbidden_parameter")
            _check_no_destination(item, f"{path}.{key}" if path else key, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_no_destination(item, path, depth + 1)


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
