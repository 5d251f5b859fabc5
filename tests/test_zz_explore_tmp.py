import pytest
from tests.test_i18n import _crawl, visible, _in_chinese, seeded  # noqa

pytestmark = pytest.mark.django_db

def test_dump(client, seeded, owner):
    pages = _crawl(_in_chinese(client, owner))
    with open("/tmp/i18n/zhpages.txt", "w") as out:
        for path, r in pages.items():
            out.write(f"=== {path}\n" + " | ".join(visible(r.content.decode()).chunks[20:]) + "\n")
