"""The batch page in Chromium: documents and a prompt template uploaded, estimated, capped and started; the
progress bar fills live from a real worker; the batch ends `completed` within its cap, with both files to
download; the page reads in Chinese."""

from decimal import Decimal

import pytest
from django.conf import settings
from playwright.sync_api import expect

from batches.models import Batch
from tests.batches.conftest import batch_worker  # noqa: F401  (a real Celery worker, the fixture)
from tests.batches.helpers import parse_jsonl, sent_documents

pytestmark = [pytest.mark.browser]

PASSWORD = "a-long-browser-passphrase-7"


def _login(page, url, email, labels=("Email", "Password", "Log in")):
    page.goto(f"{url}/login/")
    page.get_by_label(labels[0]).fill(email)
    page.get_by_label(labels[1]).fill(PASSWORD)
    page.get_by_role("button", name=labels[2]).click()


def test_batch_page_runs_documents_within_the_cap(live_server, gateway, upstream, batch_worker, new_page, console_errors,
                                                 screenshot, tmp_path):
    owner = gateway.ctx.user
    owner.set_password(PASSWORD)
    owner.save()
    documents = tmp_path / "docs.txt"
    documents.write_text("\n".join(f"Document number {n} about tolls" for n in range(1, 41)))
    page = new_page()
    _login(page, live_server.url, owner.email)
    page.goto(f"{live_server.url}/batches/")
    page.get_by_label("Run as key").select_option(label=str(gateway.key))
    page.get_by_label("Documents (CSV or text, one per line) and a prompt template").check()
    page.get_by_label("File", exact=True).set_input_files(str(documents))
    page.get_by_label("Model", exact=True).select_option("gpt-test")
    page.get_by_label("Prompt template", exact=True).fill("Summarise: {document}")
    page.get_by_label("Max output tokens per request").fill("16")
    page.get_by_label("Cost cap (USD)").fill("0.25")
    page.locator("#batch-estimate").click()
    # 40 requests × 16 output tokens at 1000 per 1M: the whole file would cost 0.64, over the cap.
    expect(page.locator("#batch-estimate-total")).to_contain_text("0.64")
    expect(page.locator("#batch-cap")).to_contain_text("0.25")
    page.locator("#batch-start").click()
    expect(page.locator("#batch-progress")).to_be_visible()
    expect(page.locator("#batch-status")).to_have_text("completed", timeout=90_000)
    batch = Batch.objects.get(organization=gateway.org)
    done, failed = int(page.locator("#batch-done").inner_text()), int(page.locator("#batch-failed").inner_text())
    assert done + failed == 40 and 20 <= done <= 25
    assert page.locator("#batch-bar").evaluate("bar => bar.value === bar.max")
    assert Decimal(page.locator("#batch-spent").inner_text()) <= Decimal("0.25")
    assert len(sent_documents(upstream)) == done  # the lines the cap could not afford were never sent
    screenshot(page, "batch-completed")
    with page.expect_download() as download:
        page.get_by_role("link", name="Errors and lines not sent (error file)").click()
    errors = parse_jsonl(open(download.value.path()).read())
    assert len(errors) == failed and {line["error"]["code"] for line in errors} == {"batch_cap_reached"}
    with page.expect_download() as download:
        page.get_by_role("link", name="Answers (output file)").click()
    assert len(parse_jsonl(open(download.value.path()).read())) == done

    # The same page in Chinese.
    page.context.add_cookies([{"name": settings.LANGUAGE_COOKIE_NAME, "value": "zh-hans", "url": live_server.url}])
    page.goto(f"{live_server.url}/batches/{batch.public_id}/")
    expect(page.locator("h1")).to_contain_text("批处理")
    expect(page.locator("#batch-status")).to_have_text("已完成")
    expect(page.get_by_role("link", name="回答（输出文件）")).to_be_visible()
    screenshot(page, "batch-completed-zh")
    assert console_errors == []


def test_another_organizations_batch_page_is_a_404(live_server, gateway, batch_worker, new_page):
    from accounts.models import Membership, Role
    from batches import services
    from batches.models import BatchFile
    from tests.accounts.factories import OrganizationFactory, UserFactory

    source = BatchFile.objects.create(organization=gateway.org, key=gateway.key, purpose="batch", filename="a.jsonl",
                                      content=b"", size=0)
    batch = Batch.objects.create(organization=gateway.org, key=gateway.key, endpoint="/v1/chat/completions", input_file=source,
                                 currency="USD", status="completed")
    stranger = UserFactory()
    stranger.set_password(PASSWORD)
    stranger.save()
    Membership.objects.create(organization=OrganizationFactory(), user=stranger, role=Role.OWNER)
    page = new_page()
    _login(page, live_server.url, stranger.email)
    for path in (f"/batches/{batch.public_id}/", f"/batches/{batch.public_id}/progress.json",
                 f"/batches/{batch.public_id}/files/{source.public_id}/"):
        assert page.request.get(live_server.url + path).status == 404
    assert page.request.post(live_server.url + f"/batches/{batch.public_id}/cancel/").status in (403, 404)  # CSRF or scope
    assert services  # the service layer is what the page calls


def test_a_sandbox_batch_page_shows_what_it_would_have_cost(live_server, gateway, upstream, batch_worker, new_page, console_errors,
                                                            screenshot):
    from billing.models import UsageEvent
    from keys import services as key_services
    from tests.batches.helpers import chat_jsonl
    from tests.gateway import drain_usage, wait_for

    owner = gateway.ctx.user
    owner.set_password(PASSWORD)
    owner.save()
    _, secret = key_services.virtual_key_create(actor=gateway.ctx, name="sandbox", user=owner, sandbox=True)
    client = gateway.client(secret, timeout=30)
    uploaded = client.files.create(file=("docs.jsonl", chat_jsonl(5)), purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")
    wait_for(lambda: client.batches.retrieve(batch.id).status == "completed", timeout=90, interval=0.3)
    rows = UsageEvent.objects.filter(batch_id=batch.id)
    wait_for(lambda: (drain_usage(), rows.count() == 5)[1], timeout=30)
    expected = sum(row.would_have_cost for row in rows)
    assert expected > 0
    page = new_page()
    _login(page, live_server.url, owner.email)
    page.goto(f"{live_server.url}/batches/{batch.id}/")
    expect(page.locator("#batch-would")).to_be_visible()
    assert Decimal(page.locator("#batch-would-have-cost").inner_text()) == expected
    assert Decimal(page.locator("#batch-spent").inner_text()) == 0
    expect(page.locator("#batch-would-label")).to_have_text("Would have cost")
    screenshot(page, "batch-sandbox-would-have-cost")
    page.context.add_cookies([{"name": settings.LANGUAGE_COOKIE_NAME, "value": "zh-hans", "url": live_server.url}])
    page.reload()
    expect(page.locator("#batch-would-label")).to_have_text("本应花费")
    expect(page.locator("#batch-would")).to_contain_text("沙盒密钥：未收取任何费用")
    # A batch that did not run in the sandbox shows no such line.
    plain = gateway.client(timeout=30)
    other = plain.batches.create(input_file_id=plain.files.create(file=("d.jsonl", chat_jsonl(1)), purpose="batch").id,
                                 endpoint="/v1/chat/completions", completion_window="24h")
    wait_for(lambda: plain.batches.retrieve(other.id).status == "completed", timeout=90, interval=0.3)
    page.goto(f"{live_server.url}/batches/{other.id}/")
    expect(page.locator("#batch-would")).to_be_hidden()
    assert console_errors == []
