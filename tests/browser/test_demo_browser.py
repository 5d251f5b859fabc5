"""`make run`'s first visit: the demo's month of usage fills the overview, the usage explorer, the A/B report
and the request log (a fallback's attempts) in a real browser."""

import re

import pytest
from django.core.management import call_command
from playwright.sync_api import expect

from accounts.models import User
from billing.demo import DEMO_EMAIL, MODELS
from billing.models import UsageEvent
from keys.models import Model
from tests.browser.checks import chart_state

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "demo-browser-passphrase-7"


def test_first_visit_shows_the_demo_month_everywhere(live_server, new_page, console_errors, screenshot):
    call_command("tollgate_demo", stdout=open("/dev/null", "w"))
    user = User.objects.get(email=DEMO_EMAIL)
    user.set_password(PASSWORD)
    user.save()
    url = live_server.url
    page = new_page()
    page.goto(f"{url}/login/")
    page.get_by_label("Email").fill(DEMO_EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("h1")).to_have_text("Demo")

    # Overview: spend per day by model, stats, top models and the budget.
    state = chart_state(page, "daily-spend")
    assert {"demo-large", "demo-fast"} <= set(state["labels"]) and sum(state["totals"]) > 1
    assert sum(1 for day in zip(*state["bars"]) if sum(day) > 0) >= 28  # a month of days with spend
    expect(page.locator("#stat-requests")).not_to_contain_text(re.compile(r"^\s*0\s*$"))
    expect(page.locator("#top-models tbody tr")).to_have_count(len(MODELS))  # every demo model has traffic
    expect(page.locator("#budgets")).to_contain_text("Demo monthly budget")
    screenshot(page, "demo-overview")

    # Usage explorer.
    page.goto(f"{url}/usage/")
    assert sum(chart_state(page, "usage-spend")["totals"]) > 1
    screenshot(page, "demo-usage")

    # The A/B report of demo-large: two variants with latencies and costs drawn.
    model = Model.objects.get(organization__name="Demo", name="demo-large")
    page.goto(f"{url}/models/{model.pk}/report/")
    expect(page.locator("#variant-table")).to_contain_text("demo-large-a")
    expect(page.locator("#variant-table")).to_contain_text("demo-large-b")
    page.wait_for_function("() => window.Chart && window.Chart.getChart(document.getElementById('chart-latency'))")
    latency = page.evaluate("() => window.Chart.getChart(document.getElementById('chart-latency')).data.datasets.map((d) => d.data)")
    # p50 and p95 of both variants (refused requests, which reached no variant, have none).
    assert sum(1 for series in latency for value in series if value and value > 0) >= 4, latency
    screenshot(page, "demo-model-report")

    # A request that fell back shows both attempts.
    fallback = UsageEvent.objects.filter(model_name="demo-fast", attempts=2).first()
    page.goto(f"{url}/usage/{fallback.pk}/")
    expect(page.locator("#attempt-trail")).to_contain_text("503")
    screenshot(page, "demo-fallback")

    assert console_errors == []
