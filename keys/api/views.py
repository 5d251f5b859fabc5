"""REST endpoints for virtual keys, provider presets and credentials, models and their deployments.

Each view reads through `keys.selectors`, writes through one `keys.services` function and finds objects
only inside the caller's organization (`get_scoped`), so another organization's object is a 404. Ids in a
request body (a team, a user, a credential) are looked up the same way and refused as field errors.
"""


from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from accounts.api.base import OrgAPIView
from accounts.api.pagination import Pagination
from accounts.api.views import paginated_response
from accounts.errors import ApplicationError
from accounts.models import Team, User
from accounts.permissions import Perm
from keys import selectors, services
from keys.api.serializers import (
    CredentialSerializer,
    DeploymentSerializer,
    ModelSerializer,
    PresetSerializer,
    RoutingPolicyFields,
    VirtualKeySerializer,
    VirtualKeyWithSecretSerializer,
)
from keys.discovery import credential_models
from keys.models import Deployment, Model, ProviderCredential
from wire.presets import PRESETS

MAX_GRACE_SECONDS = 30 * 86400


def _team(view: OrgAPIView, team_id: int | None) -> Team | None:
    if team_id is None:
        return None
    team = view.scoped(Team).filter(pk=team_id).first()
    if team is None:
        raise ApplicationError("Unknown team.", field="team", code="not_found")
    return team


def _user(view: OrgAPIView, user_id: int | None) -> User | None:
    if user_id is None:
        return None
    user = User.objects.filter(pk=user_id, memberships__organization=view.organization).first()
    if user is None:
        raise ApplicationError("Unknown user.", field="user", code="not_found")
    return user


def _credential(view: OrgAPIView, credential_id: int) -> ProviderCredential:
    credential = view.scoped(ProviderCredential).filter(pk=credential_id).first()
    if credential is None:
        raise ApplicationError("Unknown credential.", field="credential", code="not_found")
    return credential


# Virtual keys


class _KeyFields(serializers.Serializer):
    """The fields a key's owner may set, on create and on update."""

    name = serializers.CharField(max_length=120)
    allowed_models = serializers.ListField(
        child=serializers.CharField(max_length=120), required=False, help_text="Model names; empty means every model."
    )
    rpm_limit = serializers.IntegerField(required=False, allow_null=True, min_value=1, help_text="Requests per minute; null: no limit.")
    tpm_limit = serializers.IntegerField(required=False, allow_null=True, min_value=1, help_text="Tokens per minute; null: no limit.")
    expires_at = serializers.DateTimeField(required=False, allow_null=True)
    metadata = serializers.DictField(required=False, help_text="Free-form labels, returned as given.")
    sandbox = serializers.BooleanField(required=False, help_text="Every request is answered by the local demo model at no cost.")
    response_cache = serializers.BooleanField(required=False, help_text="Answer repeated identical requests from the cache.")
    cache_any_temperature = serializers.BooleanField(required=False, help_text="Also cache requests whose temperature is above 0 or not given.")
    cache_tool_calls = serializers.BooleanField(required=False, help_text="Also cache answers that call tools.")


class VirtualKeyListApi(OrgAPIView):
    """Virtual keys: admins see every key of the organization, members only their own."""

    permissions = {"GET": Perm.MANAGE_OWN_KEYS, "POST": Perm.MANAGE_OWN_KEYS}
    pagination_class = Pagination

    class FilterSerializer(serializers.Serializer):
        team = serializers.IntegerField(required=False, min_value=1, help_text="Only keys of this team id.")
        user = serializers.IntegerField(required=False, min_value=1, help_text="Only keys of this user id.")
        revoked = serializers.BooleanField(required=False, help_text="true: only revoked keys; false: only unrevoked ones.")

    class InputSerializer(_KeyFields):
        user = serializers.IntegerField(
            required=False, allow_null=True, min_value=1,
            help_text="The owner's user id. Admins may pick any member; members may only name themselves.",
        )
        team = serializers.IntegerField(required=False, allow_null=True, min_value=1, help_text="A team id.")

        class Meta:
            ref_name = "VirtualKeyCreate"

    OutputSerializer = VirtualKeySerializer

    @extend_schema(tags=["keys"], parameters=[FilterSerializer], responses=OutputSerializer(many=True))
    def get(self, request):
        filters = self.FilterSerializer(data=request.query_params.dict())
        filters.is_valid(raise_exception=True)
        data = filters.validated_data
        keys = selectors.virtual_key_visible_list(
            actor=self.org_context, team_id=data.get("team"), user_id=data.get("user"), revoked=data.get("revoked")
        )
        return paginated_response(self, keys, self.OutputSerializer)

    @extend_schema(
        tags=["keys"],
        request=InputSerializer,
        responses={201: VirtualKeyWithSecretSerializer},
        description="Creates a key. The response holds its `secret` this once; later reads show only `prefix`.",
    )
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        data["user"] = _user(self, data.get("user"))
        data["team"] = _team(self, data.get("team"))
        key, secret = services.virtual_key_create(actor=self.org_context, ip=self.client_ip(), **data)
        return Response(VirtualKeyWithSecretSerializer(key, context={"secret": secret}).data, status=status.HTTP_201_CREATED)


class VirtualKeyDetailApi(OrgAPIView):
    """One key the caller may see. DELETE revokes it: it stops working at once and cannot be undone."""

    permissions = {"GET": Perm.MANAGE_OWN_KEYS, "PATCH": Perm.MANAGE_OWN_KEYS, "DELETE": Perm.MANAGE_OWN_KEYS}

    class InputSerializer(_KeyFields):
        name = serializers.CharField(max_length=120, required=False)

        class Meta:
            ref_name = "VirtualKeyUpdate"

    OutputSerializer = VirtualKeySerializer

    def _get(self, pk):
        return self.get_scoped(selectors.virtual_key_visible_list(actor=self.org_context), pk=pk)

    @extend_schema(tags=["keys"], responses=OutputSerializer)
    def get(self, request, pk):
        return Response(self.OutputSerializer(self._get(pk)).data)

    @extend_schema(tags=["keys"], request=InputSerializer, responses=OutputSerializer)
    def patch(self, request, pk):
        key = self._get(pk)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        key = services.virtual_key_update(actor=self.org_context, key=key, ip=self.client_ip(), **serializer.validated_data)
        return Response(self.OutputSerializer(key).data)

    @extend_schema(tags=["keys"], responses={204: None}, description="Revoke the key; it stops working at once.")
    def delete(self, request, pk):
        services.virtual_key_revoke(actor=self.org_context, key=self._get(pk), ip=self.client_ip())
        return Response(status=status.HTTP_204_NO_CONTENT)


class VirtualKeyRotateApi(OrgAPIView):
    """A new secret for the key; the old one keeps working for `grace_seconds` (0: it stops at once)."""

    permissions = {"POST": Perm.MANAGE_OWN_KEYS}

    class InputSerializer(serializers.Serializer):
        grace_seconds = serializers.IntegerField(min_value=0, max_value=MAX_GRACE_SECONDS, default=0)

        class Meta:
            ref_name = "VirtualKeyRotate"

    OutputSerializer = VirtualKeyWithSecretSerializer

    @extend_schema(
        tags=["keys"],
        request=InputSerializer,
        responses=OutputSerializer,
        description="The response holds the new `secret` this once.",
    )
    def post(self, request, pk):
        key = self.get_scoped(selectors.virtual_key_visible_list(actor=self.org_context), pk=pk)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        key, secret = services.virtual_key_rotate(actor=self.org_context, key=key, ip=self.client_ip(), **serializer.validated_data)
        return Response(self.OutputSerializer(key, context={"secret": secret}).data)


# Provider presets and credentials


class ProviderPresetListApi(OrgAPIView):
    """The providers a credential can point at, with their default base URLs."""

    permissions = {"GET": Perm.VIEW_ORG}
    OutputSerializer = PresetSerializer

    @extend_schema(tags=["providers"], responses=OutputSerializer(many=True))
    def get(self, request):
        return Response(self.OutputSerializer(PRESETS.values(), many=True).data)


class _CredentialFields(serializers.Serializer):
    # No trimming: a line break at the end of a secret or header is an error to report, not to hide.
    api_key = serializers.CharField(
        write_only=True, required=False, allow_blank=True, trim_whitespace=False, max_length=4000,
        help_text="Write-only; never returned (see api_key_hint).",
    )
    base_url = serializers.CharField(
        required=False, allow_blank=True, max_length=500,
        help_text="HTTPS to a public address; empty: the preset's default.",
    )
    api_version = serializers.CharField(required=False, allow_blank=True, max_length=40, help_text="Azure only.")
    extra_headers = serializers.DictField(
        child=serializers.CharField(allow_blank=True, trim_whitespace=False, max_length=4000),
        required=False, allow_null=True, help_text="Write-only: header name to value. Replaces all; {} or null removes them.",
    )
    connect_timeout = serializers.FloatField(required=False, min_value=0.1, max_value=600)
    read_timeout = serializers.FloatField(required=False, min_value=0.1, max_value=3600)
    low_balance_threshold = serializers.DecimalField(
        max_digits=18, decimal_places=4, min_value=0, required=False, allow_null=True,
        help_text="Alert once a day when the polled balance is below this amount; null: no alert.",
    )


class CredentialListApi(OrgAPIView):
    """Upstream provider accounts. Reading needs view_org, creating manage_providers."""

    permissions = {"GET": Perm.VIEW_ORG, "POST": Perm.MANAGE_PROVIDERS}
    pagination_class = Pagination

    class InputSerializer(_CredentialFields):
        name = serializers.CharField(max_length=120)
        provider = serializers.ChoiceField(choices=list(PRESETS))

        class Meta:
            ref_name = "CredentialCreate"

    OutputSerializer = CredentialSerializer

    @extend_schema(tags=["providers"], responses=OutputSerializer(many=True))
    def get(self, request):
        return paginated_response(self, selectors.credential_list(organization=self.organization), self.OutputSerializer)

    @extend_schema(tags=["providers"], request=InputSerializer, responses={201: OutputSerializer})
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        credential = services.credential_create(actor=self.org_context, ip=self.client_ip(), **serializer.validated_data)
        return Response(self.OutputSerializer(credential).data, status=status.HTTP_201_CREATED)


class CredentialDetailApi(OrgAPIView):
    """One credential. The API key is replaced only when a new one is given; it is never shown."""

    permissions = {"GET": Perm.VIEW_ORG, "PATCH": Perm.MANAGE_PROVIDERS, "DELETE": Perm.MANAGE_PROVIDERS}

    class InputSerializer(_CredentialFields):
        name = serializers.CharField(max_length=120, required=False)

        class Meta:
            ref_name = "CredentialUpdate"

    OutputSerializer = CredentialSerializer

    def _get(self, pk):
        return self.get_scoped(selectors.credential_list(organization=self.organization), pk=pk)

    @extend_schema(tags=["providers"], responses=OutputSerializer)
    def get(self, request, pk):
        return Response(self.OutputSerializer(self._get(pk)).data)

    @extend_schema(tags=["providers"], request=InputSerializer, responses=OutputSerializer)
    def patch(self, request, pk):
        credential = self._get(pk)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        credential = services.credential_update(
            actor=self.org_context, credential=credential, ip=self.client_ip(), **serializer.validated_data
        )
        return Response(self.OutputSerializer(credential).data)

    @extend_schema(tags=["providers"], responses={204: None}, description="Refused (400, in_use) while deployments use it.")
    def delete(self, request, pk):
        services.credential_delete(actor=self.org_context, credential=self._get(pk), ip=self.client_ip())
        return Response(status=status.HTTP_204_NO_CONTENT)


class CredentialModelsApi(OrgAPIView):
    """"Fetch models": what the credential offers at its provider (GET), and models with deployments
    on this credential created from a chosen subset (POST). Both need manage_providers."""

    permissions = {"GET": Perm.MANAGE_PROVIDERS, "POST": Perm.MANAGE_PROVIDERS}

    class InputSerializer(serializers.Serializer):
        models = serializers.ListField(
            child=serializers.CharField(max_length=200), allow_empty=False, max_length=services.MAX_MODELS_PER_IMPORT,
            help_text="Upstream model names; each becomes a model of that name (or gets a deployment if the model exists).",
        )

        class Meta:
            ref_name = "CredentialModelsCreate"

    class ListSerializer(serializers.Serializer):
        models = serializers.ListField(child=serializers.DictField(), help_text="Per model: `id` at the provider and `deployed` (already on this credential).")

        class Meta:
            ref_name = "CredentialModels"

    class ResultSerializer(serializers.Serializer):
        created = serializers.ListField(child=serializers.CharField(), help_text="New models, each with one deployment.")
        extended = serializers.ListField(child=serializers.CharField(), help_text="Existing models that got a deployment on this credential.")
        skipped = serializers.ListField(child=serializers.CharField(), help_text="Already deployed on this credential.")

        class Meta:
            ref_name = "CredentialModelsResult"

    @extend_schema(tags=["providers"], responses=ListSerializer, description="Provider errors answer 502 with code provider_error; the key is never echoed.")
    def get(self, request, pk):
        credential = self.get_scoped(ProviderCredential, pk=pk)
        names = credential_models(credential=credential)
        deployed = set(credential.deployments.values_list("upstream_model", flat=True))
        return Response({"models": [{"id": name, "deployed": name in deployed} for name in names]})

    @extend_schema(tags=["providers"], request=InputSerializer, responses={201: ResultSerializer})
    def post(self, request, pk):
        credential = self.get_scoped(ProviderCredential, pk=pk)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = services.deployments_create_from_upstream(
            actor=self.org_context, credential=credential, upstream_models=serializer.validated_data["models"], ip=self.client_ip(),
        )
        return Response(self.ResultSerializer(result).data, status=status.HTTP_201_CREATED)


# Models and deployments


class ModelListApi(OrgAPIView):
    """Public model names with their deployments. Reading needs view_org, creating manage_providers."""

    permissions = {"GET": Perm.VIEW_ORG, "POST": Perm.MANAGE_PROVIDERS}
    pagination_class = Pagination

    class InputSerializer(RoutingPolicyFields):
        name = serializers.CharField(max_length=120, help_text="The name callers send as `model`.")
        description = serializers.CharField(max_length=300, required=False, allow_blank=True)
        routing = serializers.ChoiceField(choices=Model.Routing.choices, required=False)

        class Meta:
            ref_name = "ModelCreate"

    OutputSerializer = ModelSerializer

    @extend_schema(tags=["models"], responses=OutputSerializer(many=True))
    def get(self, request):
        return paginated_response(self, selectors.model_list(organization=self.organization), self.OutputSerializer)

    @extend_schema(tags=["models"], request=InputSerializer, responses={201: OutputSerializer})
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        model = services.model_create(actor=self.org_context, ip=self.client_ip(), **serializer.validated_data)
        model = selectors.model_list(organization=self.organization).get(pk=model.pk)
        return Response(self.OutputSerializer(model).data, status=status.HTTP_201_CREATED)


class ModelDetailApi(OrgAPIView):
    """One model. Deleting it deletes its deployments too."""

    permissions = {"GET": Perm.VIEW_ORG, "PATCH": Perm.MANAGE_PROVIDERS, "DELETE": Perm.MANAGE_PROVIDERS}

    class InputSerializer(RoutingPolicyFields):
        description = serializers.CharField(max_length=300, required=False, allow_blank=True)
        routing = serializers.ChoiceField(choices=Model.Routing.choices, required=False)
        is_active = serializers.BooleanField(required=False)

        class Meta:
            ref_name = "ModelUpdate"

    OutputSerializer = ModelSerializer

    def _get(self, pk):
        return self.get_scoped(selectors.model_list(organization=self.organization), pk=pk)

    @extend_schema(tags=["models"], responses=OutputSerializer)
    def get(self, request, pk):
        return Response(self.OutputSerializer(self._get(pk)).data)

    @extend_schema(tags=["models"], request=InputSerializer, responses=OutputSerializer)
    def patch(self, request, pk):
        model = self._get(pk)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.model_update(actor=self.org_context, model=model, ip=self.client_ip(), **serializer.validated_data)
        return Response(self.OutputSerializer(self._get(pk)).data)

    @extend_schema(tags=["models"], responses={204: None})
    def delete(self, request, pk):
        services.model_delete(actor=self.org_context, model=self._get(pk), ip=self.client_ip())
        return Response(status=status.HTTP_204_NO_CONTENT)


class _DeploymentFields(serializers.Serializer):
    credential = serializers.IntegerField(min_value=1, help_text="The id of one of the organization's credentials.")
    upstream_model = serializers.CharField(max_length=200, help_text="The model's name at the provider.")
    name = serializers.CharField(max_length=120, required=False, allow_blank=True)
    weight = serializers.IntegerField(min_value=0, required=False, help_text="Share of traffic; 0 only serves as a fallback.")
    order = serializers.IntegerField(min_value=0, required=False, help_text="Fallback order, lowest first.")
    context_window = serializers.IntegerField(min_value=1, required=False, allow_null=True, help_text="For fallbacks on context-window errors.")


class ModelDeploymentCreateApi(OrgAPIView):
    """Add a deployment to a model (manage_providers)."""

    permissions = {"POST": Perm.MANAGE_PROVIDERS}

    class InputSerializer(_DeploymentFields):
        class Meta:
            ref_name = "DeploymentCreate"

    OutputSerializer = DeploymentSerializer

    @extend_schema(tags=["models"], request=InputSerializer, responses={201: OutputSerializer})
    def post(self, request, pk):
        model = self.get_scoped(Model, pk=pk)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        data["credential"] = _credential(self, data["credential"])
        deployment = services.deployment_create(actor=self.org_context, model=model, ip=self.client_ip(), **data)
        return Response(self.OutputSerializer(deployment).data, status=status.HTTP_201_CREATED)


class DeploymentDetailApi(OrgAPIView):
    """One deployment: change where and how much it serves, or remove it (manage_providers)."""

    permissions = {"GET": Perm.VIEW_ORG, "PATCH": Perm.MANAGE_PROVIDERS, "DELETE": Perm.MANAGE_PROVIDERS}

    class InputSerializer(_DeploymentFields):
        credential = serializers.IntegerField(min_value=1, required=False, help_text="The id of one of the organization's credentials.")
        upstream_model = serializers.CharField(max_length=200, required=False)
        is_active = serializers.BooleanField(required=False)
        probe = serializers.ChoiceField(choices=Deployment.Probe.choices, required=False, help_text="Off by default; chat is a paid call every 5 minutes.")

        class Meta:
            ref_name = "DeploymentUpdate"

    OutputSerializer = DeploymentSerializer

    def _get(self, pk):
        return self.get_scoped(Deployment.objects.select_related("credential"), pk=pk)

    @extend_schema(tags=["models"], responses=OutputSerializer)
    def get(self, request, pk):
        return Response(self.OutputSerializer(self._get(pk)).data)

    @extend_schema(tags=["models"], request=InputSerializer, responses=OutputSerializer)
    def patch(self, request, pk):
        deployment = self._get(pk)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        if "credential" in data:
            data["credential"] = _credential(self, data["credential"])
        deployment = services.deployment_update(actor=self.org_context, deployment=deployment, ip=self.client_ip(), **data)
        return Response(self.OutputSerializer(deployment).data)

    @extend_schema(tags=["models"], responses={204: None})
    def delete(self, request, pk):
        services.deployment_delete(actor=self.org_context, deployment=self._get(pk), ip=self.client_ip())
        return Response(status=status.HTTP_204_NO_CONTENT)
