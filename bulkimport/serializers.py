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
        ]

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
