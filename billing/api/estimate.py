"""REST endpoint of the cost estimator (billing.estimator)."""


from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from accounts.api.base import OrgAPIView
from accounts.api.parsers import BoundedJSONParser
from accounts.errors import ApplicationError
from accounts.permissions import Perm
from billing import estimator
from billing.api.serializers import MoneyField

# The cost estimator


class _EstimateDeployment(serializers.Serializer):
    deployment_id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(read_only=True)
    provider = serializers.CharField(read_only=True)
    upstream_model = serializers.CharField(read_only=True)
    weight = serializers.IntegerField(read_only=True)
    order = serializers.IntegerField(read_only=True)
    unpriced = serializers.BooleanField(read_only=True, help_text="true: no price is known for this deployment.")
    missing = serializers.CharField(read_only=True, help_text='What is missing: "", "price" or "exchange_rate".')
    price_id = serializers.IntegerField(read_only=True, allow_null=True)
    currency = serializers.CharField(read_only=True, help_text="The price's currency.")
    window_multiplier = MoneyField(allow_null=True, help_text="The time-of-day multiplier applied.")
    cost = MoneyField(allow_null=True, help_text="In `currency`.")
    exchange_rate = MoneyField(allow_null=True)
    cost_display = MoneyField(allow_null=True, help_text="In the organization's currency; null without an exchange rate.")

    class Meta:
        ref_name = "EstimateDeployment"


class _EstimateModel(serializers.Serializer):
    model = serializers.CharField(read_only=True)
    input_tokens = serializers.IntegerField(read_only=True)
    output_tokens = serializers.IntegerField(read_only=True)
    unpriced = serializers.BooleanField(read_only=True, help_text="true: the main deployment has no price (or there is none).")
    missing = serializers.CharField(read_only=True, help_text='"", "deployment", "price" or "exchange_rate".')
    currency = serializers.CharField(read_only=True, source="main.currency", allow_null=True, help_text="The price's currency.")
    cost = MoneyField(source="main.cost", allow_null=True, help_text="In `currency`.")
    cost_display = MoneyField(source="main.cost_display", allow_null=True, help_text="In the organization's currency.")
    deployment_id = serializers.IntegerField(read_only=True, source="main.deployment_id", allow_null=True,
                                             help_text="The deployment priced above: where traffic goes first.")
    deployments = _EstimateDeployment(many=True, read_only=True, help_text="Every active deployment, priced.")

    class Meta:
        ref_name = "EstimateModel"


class EstimateApi(OrgAPIView):
    """Estimate a job's tokens and its cost on several models side by side, before running it.

    Give a `text`, an uploaded `file` (multipart; UTF-8, at most 5 MB), or a number of `documents` with their
    average size in tokens or characters (4 characters ≈ 1 token). A text or file is one request; each document
    is one request. Input tokens are counted offline with the o200k_base tokenizer (exact for current OpenAI
    models, close for others). Each model is priced at its deployments' prices in force at `at` (default now,
    time-of-day windows included, no cache discounts) and converted at the organization's exchange rates.
    """

    permissions = {"POST": Perm.VIEW_ORG}
    parser_classes = [BoundedJSONParser, MultiPartParser, FormParser]
    max_request_bytes = estimator.MAX_REQUEST_BYTES  # config/body_limit.py

    class InputSerializer(serializers.Serializer):
        text = serializers.CharField(required=False, trim_whitespace=False, max_length=estimator.MAX_UPLOAD_BYTES)
        documents = serializers.IntegerField(
            required=False, min_value=1, max_value=estimator.MAX_DOCUMENTS, help_text="How many documents, one request each."
        )
        average_document_tokens = serializers.IntegerField(required=False, min_value=1, max_value=estimator.MAX_TOKENS_PER_REQUEST)
        average_document_characters = serializers.IntegerField(
            required=False, min_value=1, max_value=estimator.MAX_TOKENS_PER_REQUEST * estimator.CHARS_PER_TOKEN
        )
        expected_output_tokens = serializers.IntegerField(min_value=0, max_value=estimator.MAX_TOKENS_PER_REQUEST, help_text="Per request.")
        models = serializers.ListField(
            child=serializers.CharField(max_length=120), min_length=1, max_length=estimator.MAX_MODELS,
            help_text="Public model names of the organization, compared side by side.",
        )
        at = serializers.DateTimeField(required=False, help_text="Price at this instant (e.g. peak vs off-peak); default now.")

        class Meta:
            ref_name = "EstimateRequest"

    class UploadSerializer(InputSerializer):
        file = serializers.FileField(required=False, help_text="A text file, instead of `text`.")

        class Meta:
            ref_name = "EstimateUpload"

    class OutputSerializer(serializers.Serializer):
        at = serializers.DateTimeField(read_only=True)
        currency = serializers.CharField(read_only=True, help_text="The organization's currency (of `cost_display`).")
        input_source = serializers.CharField(read_only=True, help_text="text, document_tokens or document_characters.")
        requests = serializers.IntegerField(read_only=True)
        input_tokens_per_request = serializers.IntegerField(read_only=True)
        output_tokens_per_request = serializers.IntegerField(read_only=True)
        input_tokens = serializers.IntegerField(read_only=True)
        output_tokens = serializers.IntegerField(read_only=True)
        models = _EstimateModel(many=True, read_only=True)

        class Meta:
            ref_name = "Estimate"

    @extend_schema(
        tags=["usage"],
        request={"application/json": InputSerializer, "multipart/form-data": UploadSerializer},
        responses=OutputSerializer,
    )
    def post(self, request):
        serializer = self.UploadSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        upload = data.pop("file", None)
        if upload is not None:
            if "text" in data:
                raise ApplicationError("Give either a text or a file, not both.", field="file")
            data["text"] = estimator.upload_text(upload=upload)
        result = estimator.estimate_cost(organization=self.organization, **data)
        return Response(self.OutputSerializer(result).data)
