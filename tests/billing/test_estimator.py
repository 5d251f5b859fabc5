"""The cost estimator, checked against hand-computed Decimal amounts.

Prices are per 1M tokens: a request's cost is (input × input price + output × output price) / 1,000,000,
times the time-of-day multiplier; a job of N documents is N requests of the average size.
"""

from datetime import datetime, timezone as dt_timezone
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from accounts.errors import ApplicationError
from accounts.models import Role
from billing.estimator import estimate_cost, upload_text
from tests.accounts.factories import MembershipFactory, OrganizationFactory
from tests.billing.factories import ExchangeRateFactory, PriceFactory
from tests.keys.factories import DeploymentFactory, ModelFactory, ProviderCredentialFactory
from wire.tokens import count_text

pytestmark = pytest.mark.django_db

UTC = dt_timezone.utc


@pytest.fixture
def org():
    return OrganizationFactory(currency="USD")


@pytest.fixture
def catalog(org):
    """Three models: "fast" (USD), "kimi" (CNY, converted at 0.14) and "deep" (DeepSeek, peak hours x2)."""
    openai = ProviderCredentialFactory(organization=org, provider="openai")
    moonshot = ProviderCredentialFactory(organization=org, provider="moonshot-cn")
    deepseek = ProviderCredentialFactory(organization=org, provider="deepseek")
    DeploymentFactory(organization=org, model=ModelFactory(organization=org, name="fast"), credential=openai, upstream_model="est-fast")
    DeploymentFactory(organization=org, model=ModelFactory(organization=org, name="kimi"), credential=moonshot, upstream_model="est-kimi")
    DeploymentFactory(organization=org, model=ModelFactory(organization=org, name="deep"), credential=deepseek, upstream_model="est-deep")
    PriceFactory(organization=org, provider="openai", upstream_model="est-fast", input_per_m=Decimal("0.15"), output_per_m=Decimal("0.60"))
    PriceFactory(organization=org, provider="moonshot-cn", upstream_model="est-kimi", currency="CNY",
                 input_per_m=Decimal("2"), output_per_m=Decimal("10"))
    PriceFactory(organization=org, provider="deepseek", upstream_model="est-deep", input_per_m=Decimal("0.15"),
                 output_per_m=Decimal("0.60"), time_zone="Asia/Shanghai",
                 windows=[{"days": [0, 1, 2, 3, 4], "start": "09:00", "end": "12:00", "multiplier": "2"}])
    ExchangeRateFactory(organization=org, currency="CNY", rate=Decimal("0.14"))
    return org


def by_model(estimate):
    return {m.model: m for m in estimate.models}


def test_documents_by_tokens_side_by_side(catalog):
    estimate = estimate_cost(organization=catalog, documents=1000, average_document_tokens=2000, expected_output_tokens=300,
                             models=["fast", "kimi"], at=datetime(2026, 11, 16, 14, 0, tzinfo=UTC))
    assert (estimate.requests, estimate.input_tokens_per_request, estimate.input_tokens, estimate.output_tokens) == (1000, 2000, 2_000_000, 300_000)
    assert estimate.input_source == "document_tokens"
    models = by_model(estimate)
    assert [m.model for m in estimate.models] == ["fast", "kimi"], "in the order asked"
    # fast: (2000 × 0.15 + 300 × 0.60) / 1e6 = 0.00048 per request, × 1000
    assert (models["fast"].main.cost, models["fast"].main.currency, models["fast"].main.cost_display) == (Decimal("0.48"), "USD", Decimal("0.48"))
    # kimi: (2000 × 2 + 300 × 10) / 1e6 = 0.007 CNY per request, × 1000 = 7 CNY = 7 × 0.14 USD
    assert (models["kimi"].main.cost, models["kimi"].main.currency) == (Decimal("7"), "CNY")
    assert (models["kimi"].main.exchange_rate, models["kimi"].main.cost_display) == (Decimal("0.14"), Decimal("0.98"))
    assert models["kimi"].input_tokens == 2_000_000 and models["kimi"].output_tokens == 300_000
    assert not models["fast"].unpriced and models["fast"].missing == ""


def test_documents_by_characters_round_up_to_tokens(catalog):
    estimate = estimate_cost(organization=catalog, documents=10, average_document_characters=4001, expected_output_tokens=0, models=["fast"])
    # ceil(4001 / 4) = 1001 tokens per document
    assert (estimate.input_source, estimate.input_tokens_per_request, estimate.input_tokens) == ("document_characters", 1001, 10_010)
    # 10010 × 0.15 / 1e6
    assert by_model(estimate)["fast"].main.cost == Decimal("0.0015015")


def test_text_is_counted_offline(catalog):
    text = "The quick brown fox jumps over the lazy dog. " * 100
    estimate = estimate_cost(organization=catalog, text=text, expected_output_tokens=1000, models=["fast"])
    assert estimate.input_tokens == count_text(text) == 1001
    assert (estimate.requests, estimate.input_source) == (1, "text")
    # (1001 × 0.15 + 1000 × 0.60) / 1e6 = (150.15 + 600) / 1e6
    assert by_model(estimate)["fast"].main.cost == Decimal("0.00075015")


def test_peak_hours_are_priced_at_the_given_instant(catalog):
    peak = datetime(2026, 11, 16, 2, 30, tzinfo=UTC)  # Monday 10:30 in Beijing
    off_peak = datetime(2026, 11, 16, 6, 30, tzinfo=UTC)  # Monday 14:30 in Beijing
    kwargs = dict(organization=catalog, documents=1, average_document_tokens=10_000, expected_output_tokens=1000, models=["deep"])
    # (10000 × 0.15 + 1000 × 0.60) / 1e6 = 0.0021, doubled in the window
    high = by_model(estimate_cost(**kwargs, at=peak))["deep"].main
    low = by_model(estimate_cost(**kwargs, at=off_peak))["deep"].main
    assert (high.cost, high.window_multiplier) == (Decimal("0.0042"), Decimal("2"))
    assert (low.cost, low.window_multiplier) == (Decimal("0.0021"), Decimal("1"))


def test_tiers_follow_the_size_of_one_request_not_the_whole_job(org):
    credential = ProviderCredentialFactory(organization=org, provider="openai")
    DeploymentFactory(organization=org, model=ModelFactory(organization=org, name="tiered"), credential=credential, upstream_model="est-tiered")
    PriceFactory(organization=org, upstream_model="est-tiered", input_per_m=Decimal("1"), output_per_m=Decimal("4"),
                 tiers=[{"above_prompt_tokens": 1000, "input": "2", "cached_input": None, "output": "8"}])
    small = estimate_cost(organization=org, documents=1000, average_document_tokens=1000, expected_output_tokens=100, models=["tiered"])
    large = estimate_cost(organization=org, documents=1, average_document_tokens=1001, expected_output_tokens=100, models=["tiered"])
    # 1000 requests of 1000 tokens stay in the base tier: (1000 × 1 + 100 × 4) / 1e6 × 1000
    assert by_model(small)["tiered"].main.cost == Decimal("1.4")
    # one request of 1001 tokens is above the tier: (1001 × 2 + 100 × 8) / 1e6
    assert by_model(large)["tiered"].main.cost == Decimal("0.002802")


def test_unpriced_and_unconvertible_models_say_so(org):
    credential = ProviderCredentialFactory(organization=org, provider="openai")
    cny = ProviderCredentialFactory(organization=org, provider="moonshot-cn")
    DeploymentFactory(organization=org, model=ModelFactory(organization=org, name="no-price"), credential=credential, upstream_model="est-none")
    DeploymentFactory(organization=org, model=ModelFactory(organization=org, name="no-rate"), credential=cny, upstream_model="est-cny")
    ModelFactory(organization=org, name="no-deployment")
    PriceFactory(organization=org, provider="moonshot-cn", upstream_model="est-cny", currency="CNY",
                 input_per_m=Decimal("2"), output_per_m=Decimal("10"))

    estimate = by_model(estimate_cost(organization=org, documents=1, average_document_tokens=1000, expected_output_tokens=0,
                                      models=["no-price", "no-rate", "no-deployment"]))
    assert estimate["no-price"].unpriced and estimate["no-price"].missing == "price"
    assert estimate["no-price"].main.cost is None and estimate["no-price"].main.cost_display is None
    # Priced in CNY (1000 × 2 / 1e6), but the org has no CNY rate: no display amount, never a made-up one.
    assert not estimate["no-rate"].unpriced and estimate["no-rate"].missing == "exchange_rate"
    assert (estimate["no-rate"].main.cost, estimate["no-rate"].main.cost_display) == (Decimal("0.002"), None)
    assert estimate["no-deployment"].unpriced and estimate["no-deployment"].missing == "deployment"
    assert estimate["no-deployment"].main is None


def test_the_global_book_prices_models_the_org_has_not_priced(org):
    credential = ProviderCredentialFactory(organization=org, provider="openai")
    DeploymentFactory(organization=org, model=ModelFactory(organization=org, name="glob"), credential=credential, upstream_model="est-global")
    PriceFactory(organization=None, upstream_model="est-global", input_per_m=Decimal("3"), output_per_m=Decimal("6"))
    estimate = estimate_cost(organization=org, documents=2, average_document_tokens=500, expected_output_tokens=500, models=["glob"])
    # (500 × 3 + 500 × 6) / 1e6 × 2
    assert by_model(estimate)["glob"].main.cost == Decimal("0.009")


def test_every_deployment_is_priced_and_the_first_served_one_leads(org):
    openai = ProviderCredentialFactory(organization=org, provider="openai")
    model = ModelFactory(organization=org, name="multi")
    DeploymentFactory(organization=org, model=model, credential=openai, upstream_model="est-fallback", weight=0, order=0)
    DeploymentFactory(organization=org, model=model, credential=openai, upstream_model="est-primary", weight=1, order=1)
    PriceFactory(organization=org, upstream_model="est-fallback", input_per_m=Decimal("10"), output_per_m=Decimal("10"))
    PriceFactory(organization=org, upstream_model="est-primary", input_per_m=Decimal("1"), output_per_m=Decimal("1"))
    result = by_model(estimate_cost(organization=org, documents=1, average_document_tokens=1000, expected_output_tokens=0, models=["multi"]))["multi"]
    assert [d.upstream_model for d in result.deployments] == ["est-fallback", "est-primary"]
    assert [d.cost for d in result.deployments] == [Decimal("0.01"), Decimal("0.001")]
    assert result.main.upstream_model == "est-primary", "a weight-0 deployment only serves as a fallback"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"models": ["fast"]}, "text"),
        ({"models": ["fast"], "text": "x", "documents": 2, "average_document_tokens": 1}, "documents"),
        ({"models": ["fast"], "documents": 2}, "average_document_tokens"),
        ({"models": ["fast"], "documents": 2, "average_document_tokens": 1, "average_document_characters": 4}, "average_document_tokens"),
        ({"models": ["fast"], "documents": 0, "average_document_tokens": 1}, "documents"),
        ({"models": [], "text": "x"}, "models"),
        ({"models": ["fast", "missing", "other-org-model"], "text": "x"}, "models"),
    ],
)
def test_bad_input_is_a_field_error(catalog, kwargs, field):
    ModelFactory(name="other-org-model")  # another organization's model is unknown here
    with pytest.raises(ApplicationError) as info:
        estimate_cost(organization=catalog, expected_output_tokens=0, **kwargs)
    assert info.value.field == field


def test_an_inactive_model_is_unknown(catalog):
    ModelFactory(organization=catalog, name="retired", is_active=False)
    with pytest.raises(ApplicationError) as info:
        estimate_cost(organization=catalog, text="x", expected_output_tokens=0, models=["retired"])
    assert info.value.field == "models"


def test_uploads_are_decoded_with_replacement_and_capped():
    upload = SimpleUploadedFile("notes.txt", "café".encode() + b"\xff au lait")
    assert upload_text(upload=upload) == "café\ufffd au lait"
    with pytest.raises(ApplicationError) as info:
        upload_text(upload=SimpleUploadedFile("big.txt", b"a" * 11), limit=10)
    assert (info.value.field, info.value.code) == ("file", "too_large")
    assert upload_text(upload=SimpleUploadedFile("edge.txt", b"a" * 10), limit=10) == "a" * 10


def test_the_endpoint_prices_an_uploaded_file(catalog, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    member = MembershipFactory(organization=catalog, role=Role.MEMBER).user
    client = APIClient()
    client.force_login(member)
    body = ("The quick brown fox jumps over the lazy dog. " * 100).encode()
    response = client.post(
        "/api/estimate/",
        {"file": SimpleUploadedFile("fox.txt", body), "models": ["fast", "kimi"], "expected_output_tokens": "1000"},
        format="multipart",
    )
    assert response.status_code == 200, response.content
    data = response.json()
    assert (data["input_tokens"], data["output_tokens"], data["currency"]) == (1001, 1000, "USD")
    fast, kimi = data["models"]
    # fast: (1001 × 0.15 + 1000 × 0.60) / 1e6; kimi: (1001 × 2 + 1000 × 10) / 1e6 CNY, × 0.14 USD
    assert (fast["cost"], fast["currency"], fast["cost_display"]) == ("0.00075015", "USD", "0.00075015")
    assert (kimi["cost"], kimi["currency"], kimi["cost_display"]) == ("0.012002", "CNY", "0.00168028")
    assert kimi["unpriced"] is False and kimi["deployments"][0]["exchange_rate"] == "0.14"
