"""Batch rows built directly (no upload, no worker): a batch of a key over a one-line input file."""

import factory

from batches.models import Batch, BatchFile
from tests.keys.factories import VirtualKeyFactory

CHAT = "/v1/chat/completions"
ONE_LINE = b'{"custom_id": "1", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "gpt-test", "messages": [{"role": "user", "content": "Hi"}]}}\n'


class BatchFileFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = BatchFile

    key = factory.SubFactory(VirtualKeyFactory)
    organization = factory.SelfAttribute("key.organization")
    purpose = BatchFile.Purpose.BATCH
    filename = "input.jsonl"
    content = ONE_LINE
    size = factory.LazyAttribute(lambda f: len(f.content))


class BatchFactory(factory.django.DjangoModelFactory):
    """A batch in progress (pause, resume and cancel apply to it) of `key`, in the key's organization."""

    class Meta:
        model = Batch

    key = factory.SubFactory(VirtualKeyFactory)
    organization = factory.SelfAttribute("key.organization")
    created_by = factory.SelfAttribute("key.user")
    endpoint = CHAT
    input_file = factory.SubFactory(BatchFileFactory, key=factory.SelfAttribute("..key"))
    status = Batch.Status.IN_PROGRESS
    currency = factory.SelfAttribute("organization.currency")
    total = 1
