"""REST: the A/B comparison of a model's variants (its deployments), read from the ledger."""

from datetime import timedelta

from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from accounts.api.base import OrgAPIView
from accounts.permissions import Perm
from billing.selectors import model_variant_report
from keys.models import Model


class ModelReportApi(OrgAPIView):
    """The A/B comparison of a model's variants over a time range (view_usage)."""

    permissions = {"GET": Perm.VIEW_USAGE}

    class FilterSerializer(serializers.Serializer):
        since = serializers.DateTimeField(required=False, help_text="Default: 7 days ago.")
        until = serializers.DateTimeField(required=False, help_text="Default: now.")

    class OutputSerializer(serializers.Serializer):
        model = serializers.CharField()
        since = serializers.DateTimeField()
        until = serializers.DateTimeField()
        variants = serializers.ListField(child=serializers.DictField(), help_text="Per deployment: requests, error_rate, latency_p50_ms, latency_p95_ms, ttft_p50_ms, avg_prompt_tokens, avg_completion_tokens, cost_per_request, cost_per_1k_tokens, and the difference to the first variant.")

        class Meta:
            ref_name = "ModelReport"

    @extend_schema(tags=["models"], parameters=[FilterSerializer], responses=OutputSerializer)
    def get(self, request, pk):
        model = self.get_scoped(Model, pk=pk)
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        until = filters.validated_data.get("until") or timezone.now()
        since = filters.validated_data.get("since") or until - timedelta(days=7)
        if since >= until:
            raise serializers.ValidationError({"since": ["Must be before until."]})
        report = model_variant_report(organization=self.organization, model=model, since=since, until=until)
        return Response(self.OutputSerializer(report).data)
