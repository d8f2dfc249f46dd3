from __future__ import annotations

from rest_framework import serializers

from bulkimport.models import BulkRequest
from bulkimport.services import bulk_result_url


class BulkCreateResponseSerializer(serializers.Serializer):
    requestId = serializers.UUIDField()
    facilityId = serializers.UUIDField()
    status = serializers.CharField()
    uploadUrl = serializers.URLField()


class BulkRequestSerializer(serializers.ModelSerializer):
    requestId = serializers.UUIDField(source="id")
    facilityId = serializers.UUIDField(source="facility_id")
    dryRun = serializers.BooleanField(source="dry_run")
    createdAt = serializers.DateTimeField(source="created_at")
    startedAt = serializers.DateTimeField(source="started_at", allow_null=True)
    finishedAt = serializers.DateTimeField(source="finished_at", allow_null=True)
    result = serializers.SerializerMethodField()

    class Meta:
        model = BulkRequest
        fields = [
            "requestId",
            "facilityId",
            "status",
            "dryRun",
            "reason",
            "createdAt",
            "startedAt",
            "finishedAt",
            "total",
            "processed",
            "successful",
            "failed",
            "result",
        ]

    def get_result(self, request: BulkRequest) -> str | None:
        return bulk_result_url(request)
