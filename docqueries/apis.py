"""Document Queries and documents (SPEC §1): POST/GET /medical/v1/document/query?patientId= (start, status of
the patient's latest query) and GET /medical/v1/document?patientId= (what the patient's queries found)."""

from __future__ import annotations

from django.db import transaction
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import APIView

from docqueries import selectors, services
from docqueries.serializers import (
    DocumentListSerializer,
    DocumentQuerySerializer,
    DocumentQueryStartInputSerializer,
    document_dto,
    document_fhir,
    document_query_dto,
)
from patients.authentication import customer_of
from patients.models import Patient

PATIENT_ID = OpenApiParameter("patientId", str, required=True, description="The patient's id.")


def _patient_id(request) -> str:
    patient_id = (request.query_params.get("patientId") or "").strip()
    if not patient_id:
        raise exceptions.ValidationError({"patientId": "This query parameter is required."})
    return patient_id


class DocumentQueryApi(APIView):
    @extend_schema(parameters=[PATIENT_ID], responses=DocumentQuerySerializer, operation_id="document_query_get")
    def get(self, request):
        patient_id = _patient_id(request)
        try:
            query = selectors.document_query_latest(customer=customer_of(request), patient_id=patient_id)
        except selectors.PatientNotFound as exc:
            raise exceptions.NotFound(f"No patient {patient_id}.") from exc
        if query is None:
            raise exceptions.NotFound("This patient has no Document Query.")
        return Response(document_query_dto(query))

    @extend_schema(
        parameters=[
            PATIENT_ID,
            OpenApiParameter("facilityId", str, description="A facility the patient is linked to."),
        ],
        request=DocumentQueryStartInputSerializer,
        responses=DocumentQuerySerializer,
        operation_id="document_query_start",
        description="Starts a Document Query for the patient, or answers the one still processing.",
    )
    def post(self, request):
        customer = customer_of(request)
        patient_id = _patient_id(request)
        facility_id = (request.query_params.get("facilityId") or "").strip()
        try:
            selectors.document_query_latest(customer=customer, patient_id=patient_id)
        except selectors.PatientNotFound as exc:
            raise exceptions.NotFound(f"No patient {patient_id}.") from exc
        if facility_id and not selectors.patient_in_facility(
            customer=customer, patient_id=patient_id, facility_id=facility_id
        ):
            raise exceptions.NotFound(f"No facility {facility_id} for this patient.")
        if Patient.objects.filter(id=patient_id, hie_opt_out=True).exists():
            raise exceptions.ValidationError(
                {"patientId": "The patient is opted out of HIE exchange: no Document Query is started."}
            )
        with transaction.atomic():
            services.document_queries_start(customer_id=customer.id, patient_ids=[patient_id], express=True)
        query = selectors.document_query_latest(customer=customer, patient_id=patient_id)
        assert query is not None  # just started
        return Response(document_query_dto(query))


class DocumentListApi(APIView):
    @extend_schema(
        parameters=[
            PATIENT_ID,
            OpenApiParameter("output", str, enum=["dto"], description="`dto` for DTOs instead of FHIR resources."),
        ],
        responses=DocumentListSerializer,
        operation_id="document_list",
    )
    def get(self, request):
        patient_id = _patient_id(request)
        try:
            documents = selectors.patient_documents(customer=customer_of(request), patient_id=patient_id)
        except selectors.PatientNotFound as exc:
            raise exceptions.NotFound(f"No patient {patient_id}.") from exc
        as_dto = request.query_params.get("output") == "dto"
        return Response({"documents": [document_dto(d) if as_dto else document_fhir(d) for d in documents]})
