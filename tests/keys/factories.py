import factory

from accounts.crypto import keyed_hash, new_secret, visible_prefix
from keys import encryption
from keys.models import Deployment, Model, ProviderCredential, VirtualKey
from keys.services import VIRTUAL_KEY_PREFIX
from tests.accounts.factories import OrganizationFactory


class VirtualKeyFactory(factory.django.DjangoModelFactory):
    """A key built directly; `VirtualKeyFactory(secret="tg-…")` picks the secret its hash is made from."""

    class Meta:
        model = VirtualKey

    class Params:
        secret = factory.LazyFunction(lambda: new_secret(VIRTUAL_KEY_PREFIX))

    organization = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"Key {n}")
    prefix = factory.LazyAttribute(lambda o: visible_prefix(o.secret))
    key_hash = factory.LazyAttribute(lambda o: keyed_hash(o.secret))


class ProviderCredentialFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ProviderCredential

    class Params:
        api_key = "sk-test-0123456789abcd"

    organization = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"Credential {n}")
    provider = "openai"
    base_url = "https://api.openai.com/v1"
    api_key_encrypted = factory.LazyAttribute(lambda o: encryption.encrypt(o.api_key))
    api_key_hint = factory.LazyAttribute(lambda o: o.api_key[-4:])


class ModelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Model

    organization = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"model-{n}")


class DeploymentFactory(factory.django.DjangoModelFactory):
    """A deployment whose model and credential belong to the same organization as the deployment."""

    class Meta:
        model = Deployment

    organization = factory.SubFactory(OrganizationFactory)
    model = factory.SubFactory(ModelFactory, organization=factory.SelfAttribute("..organization"))
    credential = factory.SubFactory(ProviderCredentialFactory, organization=factory.SelfAttribute("..organization"))
    upstream_model = "gpt-4o-mini"
