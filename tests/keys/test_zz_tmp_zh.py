import pytest
from datetime import timedelta
from decimal import Decimal
from django.urls import reverse
from django.utils import timezone
from tests.keys.factories import DeploymentFactory, ModelFactory
from tests.billing.factories import UsageEventFactory

@pytest.mark.django_db
def test_zh(client, org, owner):
    m = ModelFactory(organization=org, name="chat")
    d = DeploymentFactory(organization=org, model=m)
    UsageEventFactory(organization=org, model_name="chat", deployment_id=d.pk, latency_ms=12345, cost_display=Decimal("1234.5"), prompt_tokens=10, completion_tokens=10, created_at=timezone.now()-timedelta(hours=1))
    client.force_login(owner)
    client.cookies["django_language"] = "zh-hans"
    r = client.get(reverse("model_report", args=[m.pk]), HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert r.status_code == 200
    html = r.content.decode()
    import re
    print(re.search(r'<table.*?</table>', html, re.S).group(0)[-900:])
    print(r.content.decode().count('lang="zh-hans"'))
