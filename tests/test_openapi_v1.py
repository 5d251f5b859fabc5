"""The /v1 gateway in the OpenAPI schema (config/openapi_v1.py): every route the relay and the Django-served
Files and Batches API answer is documented, with the methods the server really accepts and its key auth."""

import json
import re

import httpx
import pytest
from drf_spectacular.validation import validate_schema

from batches import api_urls
from config.openapi_v1 import BEARER, TAG, X_API_KEY
from relay import messages, pipeline, responses
from tests.gateway import gateway, relay_server, upstream  # noqa: F401

PROBED = ("get", "post", "delete", "put", "patch")


def served_v1_routes() -> set[str]:
    """The /v1 routes, read from the routing tables, so that a new endpoint without documentation fails here."""
    relay = {*pipeline.ENDPOINTS, *messages.PATHS, responses.PATH, "/v1/models", "/v1/models/{model}",
             responses.STORED_PREFIX + "{response_id}", responses.STORED_PREFIX + "{response_id}" + responses.INPUT_ITEMS}
    django = {"/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", str(pattern.pattern)) for pattern in api_urls.urlpatterns}
    return relay | django


def v1_schema(client) -> dict:
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = json.loads(response.content)
    validate_schema(schema)
    return schema


@pytest.mark.django_db
def test_schema_documents_every_v1_route_with_its_key_auth_and_headers(client):
    schema = v1_schema(client)
    documented = {path for path in schema["paths"] if path.startswith("/v1")}
    assert documented == served_v1_routes()
    schemes = schema["components"]["securitySchemes"]
    assert schemes[BEARER] == {"type": "http", "scheme": "bearer", "description": schemes[BEARER]["description"]}
    assert (schemes[X_API_KEY]["in"], schemes[X_API_KEY]["name"]) == ("header", "x-api-key")
    assert any(tag["name"] == TAG for tag in schema["tags"])
    error = schema["components"]["schemas"]["V1Error"]["properties"]["error"]
    assert set(error["properties"]) == {"message", "type", "param", "code"}
    for path in documented:
        for method, operation in schema["paths"][path].items():
            assert operation["tags"] == [TAG]
            assert "format" in operation["summary"], operation["summary"]
            anthropic = path in messages.PATHS
            assert operation["security"] == ([{BEARER: []}, {X_API_KEY: []}] if anthropic else [{BEARER: []}])
            assert operation["responses"]["401"]["content"]["application/json"]["schema"]["$ref"].endswith("V1AnthropicError" if anthropic else "V1Error")
            relayed = path in pipeline.ENDPOINTS or path in messages.PATHS or path == responses.PATH
            headers = operation["responses"]["200"].get("headers", {})
            params = {parameter["name"] for parameter in operation.get("parameters", ())}
            if relayed:
                assert {"x-tollgate-model", "x-tollgate-deployment", "x-tollgate-attempts", "x-tollgate-cache"} <= set(headers)
                assert "Idempotency-Key" in params
                assert operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            assert set(re.findall(r"{(\w+)}", path)) <= params, (path, method)
    chat = schema["components"]["schemas"]["V1ChatCompletionRequest"]
    assert {"model", "messages", "stream"} <= set(chat["properties"]) and chat["required"] == ["model", "messages"]


def _probe(gateway, method: str, path: str, secret: str | None) -> httpx.Response:  # noqa: F811
    url = gateway.base_url[: -len("/v1")] + re.sub(r"{\w+}", "nope_1", path)
    headers = {"authorization": f"Bearer {secret}"} if secret else {}
    if method.upper() in ("POST", "PUT", "PATCH"):
        return httpx.request(method.upper(), url, headers=headers, json={}, timeout=20)
    return httpx.request(method.upper(), url, headers=headers, timeout=20)


def test_the_server_accepts_exactly_the_documented_methods_and_asks_for_a_key(gateway, client):  # noqa: F811
    """Each documented operation is answered (not 405, not an unknown endpoint), and refused without a key; every
    other method is 405. The bodies are empty or ids unknown: the answers are 400 or 404, with no side effect."""
    schema = v1_schema(client)
    for path, operations in schema["paths"].items():
        if not path.startswith("/v1"):
            continue
        for method in PROBED:
            answer = _probe(gateway, method, path, gateway.secret)
            if method in operations:
                assert answer.status_code not in (405, 500), (method, path, answer.text)
                assert "Unknown endpoint" not in answer.text, (method, path)
                assert _probe(gateway, method, path, None).status_code == 401, (method, path)
            else:
                assert answer.status_code == 405, (method, path, answer.status_code, answer.text)
