"""GET /medical/v1/document/query?patientId= (SPEC §1): the patient's latest Document Query."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import APIView

from docqueries import selectors
from docqueries.serializers import DocumentQuerySerializer
from metriport_bulk.api.authentication import customer_of


class DocumentQueryApi(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("patientId", str, required=True, description="The patient's id.")],
        responses=DocumentQuerySerializer,
        operation_id="document_query_get",
    )
    def get(self, request):
        patient_id = (request.query_params.get("patientId") or "").strip()
        if not patient_id:
            raise exceptions.ValidationError({"patientId": "This query parameter is required."})
        try:
            query = selectors.document_query_latest(customer=customer_of(request), patient_id=patient_id)
        except selectors.PatientNotFound as exc:
            raise exceptions.NotFound(f"No patient {patient_id}.") from exc
        if query is None:
            raise exceptions.NotFound("This patient has no Document Query.")
        return Response(DocumentQuerySerializer(query).data)
