from __future__ import annotations

from rest_framework import serializers


class DocumentQuerySerializer(serializers.Serializer):
    requestId = serializers.UUIDField(source="id")  # noqa: N815 - the API's field names
    status = serializers.CharField()
    startedAt = serializers.DateTimeField(source="started_at")  # noqa: N815
    finishedAt = serializers.DateTimeField(source="finished_at", allow_null=True)  # noqa: N815
    documents = serializers.SerializerMethodField(help_text="How many documents were found so far.")

    def get_documents(self, query) -> int:
        return len(query.documents or [])
