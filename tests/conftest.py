"""Cross-app fixtures only; each app keeps its factories in tests/<app>/factories.py."""

import pytest

from accounts.models import Role
from accounts.tenancy import OrgContext
from tests.accounts.factories import MembershipFactory, OrganizationFactory, UserFactory

# The relay served for real (uvicorn) in front of the loopback mock upstream: see tests/gateway.py.
pytest_plugins = ["tests.gateway"]

PASSWORD = "correct-horse-battery"


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _demo_model_answers_at_once(settings):
    """The demo model's human-like pace (wire/adapters/mock.py) off; tests of the pace turn it on."""
    settings.TOLLGATE_DEMO_FIRST_BYTE_MS = settings.TOLLGATE_DEMO_CHUNK_MS = 0


@pytest.fixture
def org(db):
    return OrganizationFactory()


@pytest.fixture
def other_org(db):
    return OrganizationFactory()


def _member(org, role):
    return MembershipFactory(organization=org, role=role, user=UserFactory())


@pytest.fixture
def owner(org):
    return _member(org, Role.OWNER).user


@pytest.fixture
def admin_user(org):
    return _member(org, Role.ADMIN).user


@pytest.fixture
def member_user(org):
    return _member(org, Role.MEMBER).user


@pytest.fixture
def viewer_user(org):
    return _member(org, Role.VIEWER).user


@pytest.fixture
def owner_ctx(org, owner):
    return OrgContext(organization=org, role=Role.OWNER, user=owner)


@pytest.fixture
def member_of(db):
    """member_of(org, role) -> a new user with that role in org."""
    return _member
