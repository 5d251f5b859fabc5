"""Bad input on /v1 always gets a 4xx OpenAI-format error, never a 500 or a hang."""

import httpx
import pytest


def post(gateway, body: bytes, headers=None, path="/chat/completions"):
    base = {"Authorization": f"Bearer {gateway.secret}", "Content-Type": "application/json"}
    return httpx.post(gateway.base_url + path, content=body, headers={**base, **(headers or {})}, timeout=10)


def assert_openai_error(response, status, code=None, param=None):
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    if code:
        assert error["code"] == code
    if param:
        assert error["param"] == param
    assert response.headers["x-request-id"].startswith("req_")


@pytest.mark.parametrize(
    "body, param",
    [
        (b"{not json", None),
        (b"", None),
        (b"[1, 2]", None),
        (b'"text"', None),
        (b'{"model": "gpt-test"}', "messages"),
        (b'{"messages": [{"role": "user", "content": "x"}]}', "model"),
        (b'{"model": 5, "messages": [{"role": "user", "content": "x"}]}', "model"),
        (b'{"model": "gpt-test", "messages": "hello"}', "messages"),
        (b'{"model": "gpt-test", "messages": [{"role": "wizard", "content": "x"}]}', "messages[0].role"),
        (b'{"model": "gpt-test", "messages": [{"role": "user", "content": 5}]}', "messages[0].content"),
        (b'{"model": "gpt-test", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}', "stream"),
        (b'{"model": "gpt-test", "messages": [{"role": "user", "content": "x"}], "n": 0}', "n"),
        (b'{"model": "gpt-test", "messages": [{"role": "user", "content": "x"}], "top_p": 7}', "top_p"),
        (b'{"model": "gpt-\\u0000test", "messages": [{"role": "user", "content": "x"}]}', "model"),
        (b'{"model": "gpt-test", "messages": [{"role": "user", "content": "x"}], "api_key": "sk-x"}', "api_key"),
        (b'{"model": "gpt-test", "messages": [{"role": "user", "content": "x", "extra_headers": {"a": "b"}}]}', None),
        (b'\x00\x01\x02', None),
    ],
)
def test_malformed_bodies_are_400(gateway, body, param):
    assert_openai_error(post(gateway, body), 400, param=param)


def test_wrong_content_type_is_400(gateway):
    assert_openai_error(post(gateway, b"model=gpt-test", {"Content-Type": "application/x-www-form-urlencoded"}), 400)


def test_oversized_bodies_are_413_before_parsing(gateway, relay_server):
    limit = relay_server.relay.runtime.max_body
    huge = b'{"model": "gpt-test", "messages": [{"role": "user", "content": "' + b"x" * (limit + 10) + b'"}]}'
    assert_openai_error(post(gateway, huge), 413, code="request_too_large")

    def chunks():  # no content-length: cut off as soon as it passes the limit
        yield b'{"model": "gpt-test", "messages": [{"role": "user", "content": "'
        for _ in range(limit // 65536 + 2):
            yield b"x" * 65536

    assert_openai_error(post(gateway, chunks()), 413, code="request_too_large")


def test_unknown_paths_and_methods(gateway):
    assert_openai_error(httpx.get(gateway.base_url + "/nope", timeout=5), 404)
    assert_openai_error(httpx.get(gateway.base_url + "/chat/completions", timeout=5), 405)


def test_keys_in_odd_places(gateway):
    for headers in ({"Authorization": "Basic abc"}, {"Authorization": "Bearer"}, {"Authorization": "Bearer tg-' OR 1=1 --"}):
        response = httpx.post(gateway.base_url + "/chat/completions", json={"model": "gpt-test"}, headers=headers, timeout=5)
        assert_openai_error(response, 401, code="invalid_api_key")
    body = {"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]}
    for name in ("api-key", "x-api-key"):
        assert httpx.post(gateway.base_url + "/chat/completions", json=body, headers={name: gateway.secret}, timeout=10).status_code == 200


def test_many_random_keys_from_one_address_are_throttled_but_a_valid_key_is_not(gateway, relay_server):
    """More in tests/hardening/test_key_throttle.py (the flood's lookups, trusted proxies)."""
    import secrets

    runtime = relay_server.relay.runtime
    statuses = []
    with httpx.Client(timeout=10) as client:
        for _ in range(300):
            response = client.post(gateway.base_url + "/chat/completions", json={"model": "gpt-test"},
                                   headers={"Authorization": f"Bearer tg-{secrets.token_urlsafe(32)}"})
            statuses.append(response.status_code)
    assert set(statuses) == {401, 429}
    assert statuses.count(401) <= 30  # then the address is throttled
    served = httpx.post(gateway.base_url + "/chat/completions", json={"model": "gpt-test", "messages": [{"role": "user", "content": "x"}]},
                        headers={"Authorization": f"Bearer {gateway.secret}"}, timeout=10)
    assert served.status_code == 200
    runtime.key_throttle.reset()  # other tests share this address


def test_a_known_keys_refused_requests_are_in_the_ledger_and_unknown_keys_are_not(gateway):
    """400, 403 and 404 answered to a known key each leave one row (the model asked for, no deployment,
    no cost) so its owner finds them in the request log; a wrong key leaves nothing."""
    from billing.models import UsageEvent
    from keys import services as key_services
    from tests.gateway import drain_usage, wait_for

    _, narrow = key_services.virtual_key_create(actor=gateway.ctx, name="narrow", allowed_models=["gpt-test"])
    chat = {"messages": [{"role": "user", "content": "x"}]}
    answers = [
        post(gateway, b"{not json"),
        post(gateway, orjson_dumps({"model": "gpt-\u0000test\u202e" + "x" * 300, **chat})),  # refused for the NUL
        post(gateway, orjson_dumps({"model": "no-such-model", **chat})),
        post(gateway, orjson_dumps({"model": "other", **chat}), headers={"Authorization": f"Bearer {narrow}"}),
        post(gateway, orjson_dumps({"model": "gpt-test", **chat}), headers={"Authorization": "Bearer tg-wrong"}),
    ]
    assert [a.status_code for a in answers] == [400, 400, 404, 403, 401]

    def rows():
        drain_usage()
        return {e.request_id: e for e in UsageEvent.objects.filter(organization=gateway.org)}

    wait_for(lambda: len(rows()) == 4)
    events = rows()
    for answer, code in zip(answers[:4], ("invalid_request_error", "invalid_request_error", "model_not_found", "model_not_allowed")):
        event = events[answer.headers["x-request-id"]]
        assert (event.status_code, event.error_type) == (answer.status_code, answer.json()["error"]["code"] or code)
        assert event.deployment_id is None and event.cost is None and event.completion_tokens == 0
    assert events[answers[0].headers["x-request-id"]].model_name == ""
    assert events[answers[1].headers["x-request-id"]].model_name == "gpt-test" + "x" * 110  # cut to the column, then the unprintable dropped
    assert events[answers[2].headers["x-request-id"]].model_name == "no-such-model"
    assert answers[4].headers["x-request-id"] not in events
    assert not UsageEvent.objects.filter(request_id=answers[4].headers["x-request-id"]).exists()


def orjson_dumps(value) -> bytes:
    import orjson

    return orjson.dumps(value)
