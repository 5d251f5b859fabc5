"""Output representations of keys, credentials, models and deployments, shared by list and detail views.

Secrets never leave through these: a virtual key shows its visible `prefix` (the secret itself is added
once, by the create and rotate responses), a credential shows `has_api_key`, `api_key_hint` and the
names of its extra headers, never a key, a header value or anything encrypted.
"""

from django.utils.translation import gettext
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts.api.serializers import TeamRefSerializer, UserRefSerializer
from keys.models import Model
from keys.selectors import credential_extra_headers
from wire.presets import PRESETS


class VirtualKeySerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(read_only=True)
    prefix = serializers.CharField(read_only=True, help_text="The first characters of the secret, to recognise it.")
    user = UserRefSerializer(read_only=True, allow_null=True)
    team = TeamRefSerializer(read_only=True, allow_null=True)
    allowed_models = serializers.ListField(child=serializers.CharField(), read_only=True, help_text="Empty: every model.")
    rpm_limit = serializers.IntegerField(read_only=True, allow_null=True)
    tpm_limit = serializers.IntegerField(read_only=True, allow_null=True)
    expires_at = serializers.DateTimeField(read_only=True, allow_null=True)
    revoked_at = serializers.DateTimeField(read_only=True, allow_null=True)
    previous_valid_until = serializers.DateTimeField(
        read_only=True, allow_null=True, help_text="After a rotation with a grace period: when the old secret stops working."
    )
    is_active = serializers.BooleanField(read_only=True)
    metadata = serializers.DictField(read_only=True)
    sandbox = serializers.BooleanField(read_only=True, help_text="Answered by the local demo model at no cost, priced as the model named would cost.")
    response_cache = serializers.BooleanField(read_only=True, help_text="Repeated identical requests are answered from the cache.")
    cache_any_temperature = serializers.BooleanField(read_only=True)
    cache_tool_calls = serializers.BooleanField(read_only=True)
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)

    class Meta:
        ref_name = "VirtualKey"


class VirtualKeyWithSecretSerializer(VirtualKeySerializer):
    """The create and rotate responses: the only time the secret is ever shown."""

    secret = serializers.SerializerMethodField(help_text="The secret, shown this once: store it now.")

    class Meta:
        ref_name = "VirtualKeyWithSecret"

    def get_secret(self, obj) -> str:
        return self.context["secret"]


class PresetSerializer(serializers.Serializer):
    slug = serializers.CharField(read_only=True, help_text="The value of a credential's `provider`.")
    label = serializers.SerializerMethodField(help_text="In the request's language.")
    wire = serializers.CharField(read_only=True, help_text="The wire format: openai, anthropic, gemini, azure or mock.")
    base_url = serializers.CharField(read_only=True, help_text="The default base URL; empty when it must be given.")

    class Meta:
        ref_name = "ProviderPreset"

    def get_label(self, preset) -> str:
        return gettext(preset.label)


class CredentialSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(read_only=True)
    provider = serializers.ChoiceField(choices=list(PRESETS), read_only=True)
    base_url = serializers.CharField(read_only=True)
    api_version = serializers.CharField(read_only=True)
    has_api_key = serializers.SerializerMethodField()
    api_key_hint = serializers.CharField(read_only=True, help_text="The key's last 4 characters (empty for short keys).")
    extra_header_names = serializers.SerializerMethodField(
        help_text="Names of the extra headers sent upstream; their values are never shown. "
        "Null when the stored headers cannot be decrypted with the configured keys."
    )
    connect_timeout = serializers.FloatField(read_only=True)
    read_timeout = serializers.FloatField(read_only=True)
    balance = serializers.DecimalField(
        max_digits=18, decimal_places=4, read_only=True, allow_null=True,
        help_text="The last polled account balance (DeepSeek, Moonshot/Kimi); null when never read.",
    )
    balance_currency = serializers.CharField(read_only=True)
    balance_checked_at = serializers.DateTimeField(read_only=True, allow_null=True)
    balance_error = serializers.CharField(read_only=True, help_text="Why the last balance check failed; empty when it worked.")
    low_balance_threshold = serializers.DecimalField(max_digits=18, decimal_places=4, read_only=True, allow_null=True)
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)

    class Meta:
        ref_name = "ProviderCredential"

    def get_has_api_key(self, credential) -> bool:
        return bool(credential.api_key_encrypted)

    @extend_schema_field(serializers.ListField(child=serializers.CharField(), allow_null=True))
    def get_extra_header_names(self, credential):
        try:
            return sorted(credential_extra_headers(credential))
        except ValueError:
            return None


class CredentialRefSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(read_only=True)
    provider = serializers.CharField(read_only=True)

    class Meta:
        ref_name = "CredentialRef"


class DeploymentSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    model_id = serializers.IntegerField(read_only=True)
    credential = CredentialRefSerializer(read_only=True)
    upstream_model = serializers.CharField(read_only=True, help_text="The model's name at the provider.")
    name = serializers.CharField(read_only=True, help_text="An optional variant name.")
    weight = serializers.IntegerField(read_only=True)
    order = serializers.IntegerField(read_only=True, help_text="Fallback order, lowest first.")
    context_window = serializers.IntegerField(read_only=True, allow_null=True)
    probe = serializers.CharField(read_only=True, help_text="The scheduled probe: off, models (the provider's list) or chat (a one-token call).")
    is_active = serializers.BooleanField(read_only=True)
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)

    class Meta:
        ref_name = "Deployment"


class RoutingPolicyFields(serializers.Serializer):
    """Fallbacks, retries and cooldowns of a model (all optional on input)."""

    fallback_models = serializers.ListField(child=serializers.CharField(max_length=120), required=False, help_text="Model names tried after this model's own deployments.")
    retry_statuses = serializers.ListField(child=serializers.IntegerField(min_value=400, max_value=599), required=False, help_text="Statuses that retry or fall back; empty means 408, 409, 429 and 5xx.")
    max_attempts = serializers.IntegerField(min_value=1, max_value=10, required=False)
    retries_per_deployment = serializers.IntegerField(min_value=0, max_value=5, required=False)
    deadline_seconds = serializers.IntegerField(min_value=1, max_value=3600, required=False)
    stream_deadline_seconds = serializers.IntegerField(
        min_value=1, max_value=86400, required=False, help_text="Once the upstream has started answering, a stream (or a whole answer) is stopped with an error after this many seconds.",
    )
    cooldown_failures = serializers.IntegerField(min_value=1, max_value=1000, required=False)
    cooldown_window_seconds = serializers.IntegerField(min_value=1, max_value=86400, required=False)
    cooldown_seconds = serializers.IntegerField(min_value=1, max_value=86400, required=False)
    fallback_max_price_ratio = serializers.DecimalField(max_digits=8, decimal_places=2, required=False, allow_null=True)
    context_fallback = serializers.BooleanField(required=False)
    response_cache = serializers.BooleanField(required=False, help_text="Repeated identical requests, for every key, are answered from the cache.")
    cache_any_temperature = serializers.BooleanField(required=False, help_text="Also cache requests whose temperature is above 0 or not given.")
    cache_tool_calls = serializers.BooleanField(required=False, help_text="Also cache answers that call tools.")


class ModelSerializer(RoutingPolicyFields):
    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(read_only=True, help_text="The public name callers send as `model`.")
    description = serializers.CharField(read_only=True)
    routing = serializers.ChoiceField(choices=Model.Routing.choices, read_only=True)
    is_active = serializers.BooleanField(read_only=True)
    deployments = DeploymentSerializer(many=True, read_only=True)
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)

    class Meta:
        ref_name = "Model"
