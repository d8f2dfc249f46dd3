from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from bulkimport.models import BulkRequest
from bulkimport.services import bulk_invalid_url, bulk_result_url


class BulkParamsSerializer(serializers.Serializer):
    dryRun = serializers.BooleanField()


class BulkCreateResponseSerializer(serializers.Serializer):
    requestId = serializers.UUIDField()
    facilityId = serializers.UUIDField()
    status = serializers.CharField()
    uploadUrl = serializers.URLField()
    params = BulkParamsSerializer()
    createdAt = serializers.DateTimeField()


class DocumentQueryCountsSerializer(serializers.Serializer):
    total = serializers.IntegerField()
    completed = serializers.IntegerField()
    failed = serializers.IntegerField()
    pending = serializers.IntegerField()


class PlanActionsSerializer(serializers.Serializer):
    """Rows per action: a dry run's wouldCreate, wouldUpdate, unchanged, duplicate; a real import's created,
    updated, unchanged, duplicate, drifted."""

    wouldCreate = serializers.IntegerField(required=False)
    wouldUpdate = serializers.IntegerField(required=False)
    created = serializers.IntegerField(required=False)
    updated = serializers.IntegerField(required=False)
    unchanged = serializers.IntegerField()
    duplicate = serializers.IntegerField()
    drifted = serializers.IntegerField(required=False)


class PlanSerializer(serializers.Serializer):
    """Our addition (issue 22): what the rows did, or a dry run's would do, once the request has completed."""

    actions = PlanActionsSerializer()
    absentFromFile = serializers.IntegerField(
        help_text="The facility's patients no row matched (listed by GET …/{requestId}/absent); nothing is deleted."
    )
    documentQueries = serializers.IntegerField(
        required=False,
        help_text=(
            "The Document Queries the import starts (a dry run: its confirm would start) under the Document Query "
            "budget's rule: one per person, none for opted-out patients (the file's opt-outs included) nor for "
            "patients queried within the customer's re-query window."
        ),
    )
    facilities = serializers.DictField(
        child=PlanActionsSerializer(),
        required=False,
        help_text="Facility id -> its rows per action, as `actions` (a row's facilityId, else the request's).",
    )


class AbsentSerializer(serializers.Serializer):
    requestId = serializers.UUIDField()
    absentFromFile = serializers.IntegerField()
    url = serializers.URLField(help_text="A fresh pre-signed download URL of the CSV of the absent patients.")


@extend_schema_field(PlanSerializer)
class _PlanField(serializers.JSONField):
    """`plan`: optional in the schema (omitted until the request completes), so not read-only."""


class BulkRequestSerializer(serializers.ModelSerializer):
    requestId = serializers.UUIDField(source="id")
    facilityId = serializers.UUIDField(source="facility_id")
    params = serializers.SerializerMethodField()
    dryRun = serializers.BooleanField(source="dry_run")
    createdAt = serializers.DateTimeField(source="created_at")
    startedAt = serializers.DateTimeField(source="started_at", allow_null=True)
    finishedAt = serializers.DateTimeField(source="finished_at", allow_null=True)
    result = serializers.SerializerMethodField()
    invalid = serializers.SerializerMethodField()
    documentQueries = serializers.SerializerMethodField()
    plan = _PlanField(required=False)

    class Meta:
        model = BulkRequest
        fields = [
            "requestId",
            "facilityId",
            "status",
            "params",
            "dryRun",
            "reason",
            "createdAt",
            "startedAt",
            "finishedAt",
            "total",
            "processed",
            "successful",
            "failed",
            "documentQueries",
            "result",
            "invalid",
            "warnings",
            "plan",
        ]

    def to_representation(self, instance: BulkRequest) -> dict:
        answer = super().to_representation(instance)
        if not answer.get("plan"):
            answer.pop("plan", None)  # not known before the request completes: omitted, never null
        return answer

    @extend_schema_field(BulkParamsSerializer)
    def get_params(self, request: BulkRequest) -> dict[str, bool]:
        return {"dryRun": request.dry_run}

    def get_result(self, request: BulkRequest) -> str | None:
        return bulk_result_url(request)

    def get_invalid(self, request: BulkRequest) -> str | None:
        return bulk_invalid_url(request)

    @extend_schema_field(DocumentQueryCountsSerializer)
    def get_documentQueries(self, request: BulkRequest) -> dict[str, int]:
        from docqueries.services import bulk_query_counts

        return bulk_query_counts(bulk_request_id=request.id)
