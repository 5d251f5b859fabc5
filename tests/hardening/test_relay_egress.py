"""The relay's own upstream connections reach only checked addresses (relay/egress.py, wire/addresses.py).

A base URL is checked when it is saved; these tests then change what the host means (DNS rebinding is
simulated by taking the name off the allow list: `localhost` resolves to loopback like a rebound name)
and check that the relay refuses to connect, with a clear 502, and that the upstream never sees the
provider key.
"""

import asyncio
import socket
import uuid

import openai
import pytest

from relay.egress import CheckedResolver, EgressRefused
from tests.gateway import wait_for


class FakeResolver:
    """Answers from a table (names not in it: the real resolver, when given one)."""

    def __init__(self, answers: dict[str, list[str]], real=None):
        self.answers, self.real, self.calls = answers, real, 0

    async def resolve(self, host, port=0, family=socket.AF_INET):
        self.calls += 1
        if host not in self.answers and self.real is not None:
            return await self.real.resolve(host, port, family)
        return [{"hostname": host, "host": address, "port": port, "family": family, "proto": 0, "flags": 0} for address in self.answers[host]]

    async def close(self):
        pass


@pytest.fixture
def dns(relay_server):
    """Names of this test only (no pooled connection of another test can answer for them) -> addresses."""
    checked = relay_server.relay.runtime.session.connector._resolver
    real = checked._resolver
    table: dict[str, list[str]] = {}
    checked._resolver = FakeResolver(table, real)
    checked.clear()
    yield table
    checked._resolver = real
    checked.clear()


def _name(dns, address="127.0.0.1") -> str:
    name = f"provider-{uuid.uuid4().hex[:10]}.example.com"
    dns[name] = [address]
    return name


def _model_on(gateway, settings, base_url: str, name: str, allow: list[str]):
    from keys import services as key_services

    settings.TOLLGATE_EGRESS_ALLOW_HOSTS = allow  # what the host was allowed as at save time
    credential = key_services.credential_create(actor=gateway.ctx, name=f"cred-{name}", provider="custom", base_url=base_url, api_key="test-key")
    return gateway.add_model(name, "echo", credential=credential)


def _saw_provider_key(upstream) -> bool:
    return any("test-key" in str(request["headers"]) for request in upstream.requests)


def test_a_name_that_now_resolves_to_loopback_is_refused_and_never_gets_the_key(gateway, upstream, settings, dns):
    host = _name(dns)  # public at save time (allow-listed there), loopback when the relay connects
    _model_on(gateway, settings, f"http://{host}:{upstream.port}/v1", "rebound", ["127.0.0.1", host])
    settings.TOLLGATE_EGRESS_ALLOW_HOSTS = ["127.0.0.1"]
    upstream.reset()
    with pytest.raises(openai.APIStatusError) as caught:
        gateway.client().chat.completions.create(model="rebound", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 502
    error = caught.value.body
    assert error["code"] == "egress_refused" and "TOLLGATE_EGRESS_ALLOW_HOSTS" in error["message"]
    assert upstream.requests == [] and not _saw_provider_key(upstream)


def test_an_allow_listed_name_is_matched_whatever_its_case(gateway, upstream, settings, dns):
    host = _name(dns)
    _model_on(gateway, settings, f"http://{host}:{upstream.port}/v1", "by-name", ["127.0.0.1", host.upper()])
    answer = gateway.client().chat.completions.create(model="by-name", messages=[{"role": "user", "content": "hi"}])
    assert answer.choices[0].message.content and _saw_provider_key(upstream)


def test_an_ip_literal_off_the_allow_list_is_refused_too(gateway, upstream, settings):
    """aiohttp never asks a resolver about IP literals: the relay checks them itself."""
    settings.TOLLGATE_EGRESS_ALLOW_HOSTS = ["api.example.com"]  # 127.0.0.1 (the mock's address) no longer allowed
    upstream.reset()
    with pytest.raises(openai.APIStatusError) as caught:
        gateway.client().chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 502 and caught.value.body["code"] == "egress_refused"
    assert upstream.requests == []


def test_a_refusal_is_final_not_retried(gateway, upstream, settings, dns):
    """Retrying would only ask the same question again: one attempt, however many retries the model allows."""
    from billing.models import UsageEvent
    from keys.models import Model
    from tests.gateway import drain_usage

    host = _name(dns)
    model = _model_on(gateway, settings, f"http://{host}:{upstream.port}/v1", "rebound-retry", ["127.0.0.1", host])
    Model.objects.filter(pk=model.pk).update(retries_per_deployment=3, max_attempts=5)
    settings.TOLLGATE_EGRESS_ALLOW_HOSTS = ["127.0.0.1"]
    upstream.reset()
    with pytest.raises(openai.APIStatusError) as caught:
        gateway.client().chat.completions.create(model="rebound-retry", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 502 and upstream.requests == []

    def attempts():
        drain_usage()
        event = UsageEvent.objects.filter(organization=gateway.org, model_name="rebound-retry").first()
        return event and event.attempts

    assert wait_for(attempts) == 1


# --- the resolver on its own -----------------------------------------------------------------------


def _resolve(resolver, host):
    return asyncio.run(resolver.resolve(host, 443))


@pytest.mark.parametrize("addresses", [["127.0.0.1"], ["93.184.215.14", "10.0.0.5"], ["169.254.169.254"], ["::ffff:127.0.0.1"], ["::1"], []])
def test_every_address_of_an_answer_must_be_public(settings, addresses):
    settings.TOLLGATE_EGRESS_ALLOW_HOSTS = []
    resolver = CheckedResolver(ttl=60, resolver=FakeResolver({"api.example.com": addresses}))
    with pytest.raises(EgressRefused):
        _resolve(resolver, "api.example.com")


def test_answers_and_refusals_are_kept_for_the_ttl(settings):
    settings.TOLLGATE_EGRESS_ALLOW_HOSTS = ["Internal.Example"]
    inner = FakeResolver({"api.example.com": ["93.184.215.14"], "evil.example.com": ["127.0.0.1"], "internal.example": ["10.0.0.7"]})
    resolver = CheckedResolver(ttl=60, resolver=inner)
    for _ in range(3):
        assert [h["host"] for h in _resolve(resolver, "api.example.com")] == ["93.184.215.14"]
        with pytest.raises(EgressRefused):
            _resolve(resolver, "evil.example.com")
        assert [h["host"] for h in _resolve(resolver, "internal.example")] == ["10.0.0.7"]  # allow-listed, any case
    assert inner.calls == 3  # one lookup per host, then the kept answers
    expired = CheckedResolver(ttl=0, resolver=inner)
    _resolve(expired, "api.example.com")
    _resolve(expired, "api.example.com")
    assert inner.calls == 5
