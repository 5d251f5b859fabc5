"""/api/docs/ renders Swagger UI from our own static files, offline and within the app's CSP."""

from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_api_docs_render_the_operations_offline(live_server, page, console_errors, screenshot):
    served = urlsplit(live_server.url).netloc
    elsewhere = []

    def offline(route):  # no internet: anything not served by Tollgate itself fails, as it would offline
        if urlsplit(route.request.url).netloc == served:
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    page.route("**/*", offline)
    response = page.goto(f"{live_server.url}/api/docs/")
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "http" not in csp

    # The schema is generated on its first request, over every API view: seconds on a busy machine.
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Tollgate API", timeout=30_000)
    operation = page.locator(".opblock-summary-path", has_text="/api/invitations/").first
    expect(operation).to_be_visible()
    page.locator(".opblock-tag", has_text="invitations").first.scroll_into_view_if_needed()
    # The /v1 gateway (config/openapi_v1.py) is in the same schema, under its own tag.
    gateway = page.locator(".opblock-tag", has_text="v1 gateway (OpenAI/Anthropic compatible)").first
    gateway.scroll_into_view_if_needed()
    chat = page.locator(".opblock-post .opblock-summary-path", has_text="/v1/chat/completions").first
    expect(chat).to_be_visible()
    chat.click()  # expanded: its Tollgate request header is listed
    expect(page.locator(".opblock-post.is-open .parameters-col_name", has_text="Idempotency-Key").first).to_be_visible()
    screenshot(page, "api-docs")
    assert page.locator(".opblock").count() > 20
    assert elsewhere == [], "the docs page fetched from elsewhere"
    # A CSP refusal shows up as a console error ("Refused to apply inline style…"): none.
    assert console_errors == []
