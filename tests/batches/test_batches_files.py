"""The Files API beside batches: list (OpenAI's cursor pages, scoped to the key's organization) and delete
(refused while a batch still reads the file), through the official openai SDK."""

import httpx
import openai
import pytest

from accounts.models import Role
from accounts.tenancy import OrgContext
from batches.models import Batch, BatchFile
from keys import services as key_services
from tests.accounts.factories import OrganizationFactory
from tests.batches.helpers import chat_jsonl


def _stranger(gateway):
    other = OrganizationFactory()
    _, secret = key_services.virtual_key_create(actor=OrgContext(organization=other, role=Role.OWNER, user=None), name="other")
    return gateway.client(secret)


def _upload(client, count: int) -> list[str]:
    return [client.files.create(file=(f"f{n}.jsonl", chat_jsonl(1)), purpose="batch").id for n in range(count)]


def test_files_list_pages_like_openai_and_stays_in_the_organization(gateway):
    client = gateway.client()
    ids = _upload(client, 5)
    stranger = _stranger(gateway)
    _upload(stranger, 2)
    first = client.files.list(limit=2)
    assert [f.id for f in first.data] == ids[::-1][:2] and first.has_more is True
    # The SDK follows the cursor (`after`): every file once, newest first, none of the other organization's.
    assert [f.id for f in client.files.list(limit=2)] == ids[::-1]
    assert [f.id for f in client.files.list(limit=2, order="asc")] == ids
    assert all(f.object == "file" and f.purpose == "batch" and f.bytes > 0 for f in first.data)
    assert len(stranger.files.list().data) == 2 and not set(f.id for f in stranger.files.list().data) & set(ids)
    response = httpx.get(f"{gateway.base_url}/files", params={"order": "sideways"}, headers={"Authorization": f"Bearer {gateway.secret}"})
    assert response.status_code == 400 and response.json()["error"]["param"] == "order"


def test_delete_a_file(gateway):
    client = gateway.client()
    kept, gone = _upload(client, 2)
    deleted = client.files.delete(gone)
    assert (deleted.id, deleted.object, deleted.deleted) == (gone, "file", True)
    assert [f.id for f in client.files.list().data] == [kept]
    for call in (lambda: client.files.retrieve(gone), lambda: client.files.content(gone), lambda: client.files.delete(gone),
                 lambda: client.batches.create(input_file_id=gone, endpoint="/v1/chat/completions", completion_window="24h")):
        with pytest.raises(openai.NotFoundError):
            call()
    row = BatchFile.objects.get(public_id=gone)
    assert row.deleted_at is not None and bytes(row.content) == b"" and row.size == 0  # the content is gone, not hidden


def test_another_organizations_file_cannot_be_deleted(gateway):
    client = gateway.client()
    (mine,) = _upload(client, 1)
    with pytest.raises(openai.NotFoundError):
        _stranger(gateway).files.delete(mine)
    assert client.files.retrieve(mine).id == mine and client.files.content(mine).content == chat_jsonl(1)


def test_a_running_batchs_input_cannot_be_deleted_until_it_ends(gateway):
    client = gateway.client()
    (source,) = _upload(client, 1)
    batch = Batch.objects.create(organization=gateway.org, key=gateway.key, endpoint="/v1/chat/completions", currency="USD",
                                 input_file=BatchFile.objects.get(public_id=source), status=Batch.Status.IN_PROGRESS)
    with pytest.raises(openai.ConflictError) as refused:
        client.files.delete(source)
    assert refused.value.code == "file_in_use" and batch.public_id in refused.value.message
    assert client.files.retrieve(source).id == source
    Batch.objects.filter(pk=batch.pk).update(status=Batch.Status.COMPLETED)
    assert client.files.delete(source).deleted is True
    # The finished batch still names its input file, as OpenAI's does.
    assert client.batches.retrieve(batch.public_id).input_file_id == source
