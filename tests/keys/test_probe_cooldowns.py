"""Scheduled probes feed the relay's cooldowns (keys/health.py): a deployment whose probe failed is routed
around by every relay process until a probe succeeds, and a probe never lifts a cooldown the relay set."""

import time

import pytest
import redis
from django.conf import settings
from django.urls import reverse

from keys.health import COOLDOWN_HASH, PROBE_COOLDOWN_HASH, PROBE_INTERVAL_SECONDS, probe_cooldown_apply
from keys.models import Deployment, DeploymentProbe
from keys.probes import deployment_probe, deployment_probes_run
from relay import cooldown
from tests.gateway import wait_for
from tests.relay.test_routing import routed, served_by

pytestmark = pytest.mark.skipif(not settings.REDIS_URL, reason="cooldowns are shared through Redis")


@pytest.fixture
def shared():
    client = redis.Redis.from_url(settings.REDIS_URL, decode_responses=True)
    yield client
    client.close()


def test_the_relay_reads_the_hash_the_probes_write():
    assert cooldown.HASH == COOLDOWN_HASH


def test_a_failed_probe_routes_requests_around_the_deployment_until_a_probe_succeeds(gateway, shared):
    # "gpt-unknown" answers chat on the mock but is missing from the provider's model list: its probe fails.
    _, (unlisted, listed) = routed(gateway, "probed", [("gpt-unknown", 1, 0), ("gpt-4o", 0, 1)])
    Deployment.objects.filter(pk__in=[unlisted.pk, listed.pk]).update(probe="models")
    assert served_by(gateway, "probed", 2) == {unlisted.pk: 2}

    before = time.time()
    assert deployment_probes_run() == 2
    assert not DeploymentProbe.objects.get(deployment=unlisted).ok and DeploymentProbe.objects.get(deployment=listed).ok
    until = float(shared.hget(COOLDOWN_HASH, unlisted.pk))
    assert until >= before + PROBE_INTERVAL_SECONDS and shared.hget(COOLDOWN_HASH, listed.pk) is None
    # Every relay process polls the shared cooldowns (0.5 s): requests now go to the healthy deployment.
    wait_for(lambda: served_by(gateway, "probed", 1) == {listed.pk: 1})
    assert served_by(gateway, "probed", 3) == {listed.pk: 3}

    # The provider lists the model again (here: the deployment points at a listed one): the probe lifts its cooldown.
    Deployment.objects.filter(pk=unlisted.pk).update(upstream_model="gpt-4o-mini")
    assert deployment_probe(deployment=Deployment.objects.select_related("credential", "model").get(pk=unlisted.pk)).ok
    assert shared.hget(COOLDOWN_HASH, unlisted.pk) is None and shared.hget(PROBE_COOLDOWN_HASH, unlisted.pk) is None
    wait_for(lambda: served_by(gateway, "probed", 1) == {unlisted.pk: 1})


def test_a_successful_probe_leaves_the_relays_own_cooldown(db, shared):
    shared.hset(COOLDOWN_HASH, 987654, time.time() + 30)  # the relay cooled it after real failures
    try:
        probe_cooldown_apply(deployment_id=987654, ok=True, cooldown_seconds=30)
        assert shared.hget(COOLDOWN_HASH, 987654) is not None
        probe_cooldown_apply(deployment_id=987654, ok=False, cooldown_seconds=900)  # a model's longer cooldown wins
        assert float(shared.hget(PROBE_COOLDOWN_HASH, 987654)) >= time.time() + 890
        probe_cooldown_apply(deployment_id=987654, ok=True, cooldown_seconds=30)
        assert shared.hget(COOLDOWN_HASH, 987654) is None
    finally:
        shared.hdel(COOLDOWN_HASH, 987654)
        shared.hdel(PROBE_COOLDOWN_HASH, 987654)


def test_the_page_says_the_deployment_is_routed_around_and_charts_the_history(client, gateway, shared):
    _, (unlisted,) = routed(gateway, "charted", [("gpt-unknown", 1, 0)])
    deployment = Deployment.objects.select_related("credential", "model").get(pk=unlisted.pk)
    deployment_probe(deployment=deployment)
    client.force_login(gateway.ctx.user)
    page = client.get(reverse("deployment_edit", args=[unlisted.pk])).content.decode()
    assert "data-probe-cooldown" in page and 'data-health-chart="health-chart-data"' in page and '"ok": [false]' in page
    shared.hdel(COOLDOWN_HASH, unlisted.pk)
    shared.hdel(PROBE_COOLDOWN_HASH, unlisted.pk)
