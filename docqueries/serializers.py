"""Document Query and document shapes in Metriport's DTOs (SPEC §1, §4): the query status
`{requestId, download: {status, total, successful, errors}, convert: {...}}`, the DocumentReference DTO of
`@metriport/shared` (optional strings omitted, never null) and the FHIR DocumentReference that Metriport's
`GET /medical/v1/document` answers unless `output=dto` is asked for."""

from __future__ import annotations

from rest_framework import serializers

from docqueries.models import DocumentQuery, QueryStatus

# The DocumentReference DTO's optional string fields (`@metriport/shared` documentsSchema).
DOCUMENT_OPTIONAL_STRINGS = ("description", "status", "indexed", "mimeType")


def document_dto(document: dict) -> dict:
    """One stored document (sandbox or gateway answer) as the DocumentReference DTO. Backends may say
    `contentType`; Metriport's schema says `mimeType`."""
    dto: dict = {"id": str(document["id"]), "fileName": str(document.get("fileName") or document["id"])}
    values = {**document, "mimeType": document.get("mimeType") or document.get("contentType")}
    for field in DOCUMENT_OPTIONAL_STRINGS:
        if isinstance(values.get(field), str) and values[field]:
            dto[field] = values[field]
    if isinstance(document.get("size"), int | float) and not isinstance(document.get("size"), bool):
        dto["size"] = document["size"]
    if isinstance(document.get("type"), dict):
        dto["type"] = document["type"]
    return dto


def document_fhir(document: dict) -> dict:
    """The DTO as a FHIR R4 DocumentReference (status and content are required there)."""
    dto = document_dto(document)
    attachment: dict = {"title": dto["fileName"]}
    if "mimeType" in dto:
        attachment["contentType"] = dto["mimeType"]
    if "size" in dto:
        attachment["size"] = dto["size"]
    resource: dict = {"resourceType": "DocumentReference", "id": dto["id"], "status": "current"}
    if "description" in dto:
        resource["description"] = dto["description"]
    if "type" in dto:
        resource["type"] = dto["type"]
    resource["content"] = [{"attachment": attachment}]
    return resource


def document_query_dto(query: DocumentQuery) -> dict:
    """Downloads are what the network found; nothing is converted here, so `convert` ends with the download,
    with a total of zero (Metriport's shape when there is nothing to convert)."""
    found = len(query.documents or [])
    download: dict[str, str | int]
    convert: dict[str, str | int]
    if query.status == QueryStatus.PROCESSING:
        download = {"status": "processing"}
        convert = {"status": "processing"}
    else:
        download = {"status": query.status, "total": found, "successful": found, "errors": 0}
        convert = {"status": query.status, "total": 0, "successful": 0, "errors": 0}
    body: dict = {"requestId": str(query.id), "download": download, "convert": convert}
    # Ours, after Metriport's fields (its parsers strip unknown keys).
    body["startedAt"] = serializers.DateTimeField().to_representation(query.started_at)
    if query.finished_at is not None:
        body["finishedAt"] = serializers.DateTimeField().to_representation(query.finished_at)
    return body


# --- OpenAPI descriptions of the shapes above -----------------------------------------------------------


class ProgressSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=QueryStatus.choices)
    total = serializers.IntegerField(required=False)
    successful = serializers.IntegerField(required=False)
    # A declared field (the serializer's metaclass moves it to _declared_fields), not Serializer.errors.
    errors = serializers.IntegerField(required=False)  # type: ignore[assignment]


class DocumentQuerySerializer(serializers.Serializer):
    requestId = serializers.UUIDField()  # noqa: N815 - the API's field names
    download = ProgressSerializer()
    convert = ProgressSerializer()
    startedAt = serializers.DateTimeField(help_text="Ours: when the query started.")  # noqa: N815
    finishedAt = serializers.DateTimeField(required=False, help_text="Ours: when it ended.")  # noqa: N815


class DocumentQueryStartInputSerializer(serializers.Serializer):
    metadata = serializers.DictField(child=serializers.CharField(), required=False)


class DocumentSerializer(serializers.Serializer):
    id = serializers.CharField()
    fileName = serializers.CharField()  # noqa: N815
    description = serializers.CharField(required=False)
    status = serializers.CharField(required=False)
    indexed = serializers.CharField(required=False)
    mimeType = serializers.CharField(required=False)  # noqa: N815
    size = serializers.IntegerField(required=False)
    type = serializers.DictField(required=False)


class DocumentListSerializer(serializers.Serializer):
    documents = DocumentSerializer(many=True, help_text="FHIR DocumentReferences, or these DTOs with output=dto.")
