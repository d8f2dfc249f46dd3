"""Facility and patient endpoints (SPEC §1). Views parse input and call services/selectors."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import APIView

from idempotency.http import IDEMPOTENCY_KEY, idempotent_answer
from metriport_bulk.api.errors import Conflict, PreconditionFailed
from metriport_bulk.api.pagination import paginator_for
from patients import selectors, services
from patients.authentication import customer_of
from patients.columns import patient_fields
from patients.demographics import demographics_read
from patients.serializers import (
    FacilitySerializer,
    HieOptOutSerializer,
    PatientInputSerializer,
    PatientSerializer,
)

FACILITY_ID = OpenApiParameter("facilityId", str, description="Only items of this facility.")
COHORT_ID = OpenApiParameter("cohortId", str, description="Only patients of this cohort (our addition).")
WRITE_FACILITY_ID = OpenApiParameter(
    "facilityId", str, description="The facility where the patient receives care; optional with one facility."
)
IF_MATCH = OpenApiParameter(
    "If-Match", str, OpenApiParameter.HEADER, description="The eTag last read; 412 when it is not current."
)


def _if_match(request) -> str | None:
    return request.headers.get("If-Match")


def _write_facility(request):
    try:
        return selectors.facility_resolve(
            customer=customer_of(request), facility_id=request.query_params.get("facilityId")
        )
    except selectors.FacilityChoiceError as exc:
        if exc.status == 404:
            raise exceptions.NotFound(str(exc)) from exc
        raise exceptions.ValidationError({"facilityId": str(exc)}) from exc


def _patient_answer(patient, *, status_code: int = status.HTTP_200_OK) -> Response:
    patient = selectors.patient_get(customer=patient.customer, patient_id=patient.id)  # links read fresh
    return Response(PatientSerializer(patient).data, status=status_code)


class FacilityListCreateApi(APIView):
    pagination_class = paginator_for("facilities")

    @extend_schema(responses=FacilitySerializer(many=True), operation_id="facility_list")
    def get(self, request):
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(selectors.facility_list(customer=customer_of(request)), request, view=self)
        return paginator.get_paginated_response(FacilitySerializer(page, many=True).data)

    @extend_schema(request=FacilitySerializer, responses={201: FacilitySerializer}, operation_id="facility_create")
    def post(self, request):
        serializer = FacilitySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        facility = services.facility_create(customer=customer_of(request), **serializer.validated_data)
        return Response(FacilitySerializer(facility).data, status=status.HTTP_201_CREATED)


class FacilityDetailApi(APIView):
    @extend_schema(responses=FacilitySerializer, operation_id="facility_get")
    def get(self, request, facility_id):
        return Response(
            FacilitySerializer(selectors.facility_get(customer=customer_of(request), facility_id=facility_id)).data
        )

    @extend_schema(request=FacilitySerializer, responses=FacilitySerializer, operation_id="facility_update")
    def put(self, request, facility_id):
        facility = selectors.facility_get(customer=customer_of(request), facility_id=facility_id)
        serializer = FacilitySerializer(facility, data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            facility = services.facility_update(
                facility=facility, if_match=_if_match(request), **serializer.validated_data
            )
        except services.StaleETag as exc:
            raise PreconditionFailed() from exc
        return Response(FacilitySerializer(facility).data)

    @extend_schema(
        parameters=[IF_MATCH],
        request=None,
        responses={204: None, 409: OpenApiTypes.OBJECT},
        operation_id="facility_delete",
        description="Deletes a facility; 409 while patients or bulk requests refer to it.",
    )
    def delete(self, request, facility_id):
        facility = selectors.facility_get(customer=customer_of(request), facility_id=facility_id)
        try:
            services.facility_delete(facility=facility, if_match=_if_match(request))
        except services.StaleETag as exc:
            raise PreconditionFailed() from exc
        except services.FacilityInUse as exc:
            raise Conflict(str(exc)) from exc
        return Response(status=status.HTTP_204_NO_CONTENT)


class PatientListCreateApi(APIView):
    pagination_class = paginator_for("patients")

    @extend_schema(
        parameters=[FACILITY_ID, COHORT_ID], responses=PatientSerializer(many=True), operation_id="patient_list"
    )
    def get(self, request):
        patients = selectors.patient_list(
            customer=customer_of(request),
            facility_id=request.query_params.get("facilityId"),
            cohort_id=request.query_params.get("cohortId"),
        )
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(patients, request, view=self)
        return paginator.get_paginated_response(PatientSerializer(page, many=True).data)

    @extend_schema(
        parameters=[WRITE_FACILITY_ID, IDEMPOTENCY_KEY],
        request=PatientInputSerializer,
        responses={201: PatientSerializer, 200: PatientSerializer},
        operation_id="patient_create",
        description="Creates a patient with Bulk Patient Create's normalization; a patient matching by the bulk "
        "match rule is answered (200) instead of a duplicate. Starts a Document Query unless opted out.",
    )
    def post(self, request):
        customer = customer_of(request)

        def create() -> tuple[str, int]:
            facility = _write_facility(request)
            written = services.patient_create(
                customer=customer, facility=facility, normalized=demographics_read(request.data)
            )
            return str(written.patient.id), 201 if written.created else 200

        def render(patient_id: str, status_code: int) -> Response:
            patient = selectors.patient_get(customer=customer, patient_id=patient_id)
            return Response(PatientSerializer(patient).data, status=status_code)

        return idempotent_answer(
            request,
            customer=customer,
            operation="patient_create",
            parameters={"facilityId": request.query_params.get("facilityId") or "", "body": request.data},
            run=create,
            render=render,
        )


class PatientDetailApi(APIView):
    @extend_schema(responses=PatientSerializer, operation_id="patient_get")
    def get(self, request, patient_id):
        return Response(
            PatientSerializer(selectors.patient_get(customer=customer_of(request), patient_id=patient_id)).data
        )

    @extend_schema(
        parameters=[WRITE_FACILITY_ID, IF_MATCH],
        request=PatientInputSerializer,
        responses=PatientSerializer,
        operation_id="patient_update",
    )
    def put(self, request, patient_id):
        patient = selectors.patient_get(customer=customer_of(request), patient_id=patient_id)
        facility = _write_facility(request)
        normalized = demographics_read(request.data)
        try:
            patient = services.patient_update(
                patient=patient, facility=facility, normalized=normalized, if_match=_if_match(request)
            )
        except services.StaleETag as exc:
            raise PreconditionFailed() from exc
        return _patient_answer(patient)

    @extend_schema(parameters=[FACILITY_ID, IF_MATCH], responses={204: None}, operation_id="patient_delete")
    def delete(self, request, patient_id):
        customer = customer_of(request)
        patient = selectors.patient_get(customer=customer, patient_id=patient_id)
        facility_id = request.query_params.get("facilityId")
        if facility_id:
            facility = selectors.facility_get(customer=customer, facility_id=facility_id)
            if not patient.patientfacility_set.filter(facility=facility).exists():
                raise exceptions.NotFound(f"Patient {patient_id} is not a patient of facility {facility_id}.")
        try:
            services.patient_delete(patient=patient, if_match=_if_match(request))
        except services.StaleETag as exc:
            raise PreconditionFailed() from exc
        return Response(status=status.HTTP_204_NO_CONTENT)


class PatientMatchApi(APIView):
    @extend_schema(
        request=PatientInputSerializer,
        responses={200: PatientSerializer},
        operation_id="patient_match",
        description="The patient these demographics match by the bulk match rule, or 404.",
    )
    def post(self, request):
        customer = customer_of(request)
        fields = patient_fields(demographics_read(request.data))
        patient = services.patient_find_match(customer_id=customer.id, fields=fields)
        if patient is None:
            raise exceptions.NotFound("No patient matches these demographics.")
        return _patient_answer(patient)


class PatientExternalIdApi(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("externalId", str, required=True)],
        responses=PatientSerializer,
        operation_id="patient_get_by_external_id",
    )
    def get(self, request):
        external_id = (request.query_params.get("externalId") or "").strip()
        if not external_id:
            raise exceptions.ValidationError({"externalId": "This query parameter is required."})
        return _patient_answer(selectors.patient_by_external_id(customer=customer_of(request), external_id=external_id))


class PatientHieOptOutApi(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("hieOptOut", OpenApiTypes.BOOL, required=True)],
        request=None,
        responses=HieOptOutSerializer,
        operation_id="patient_hie_opt_out",
        description="Opts the patient out of (true) or back into (false) health information exchange: no "
        "Document Query is started for an opted-out patient.",
    )
    def put(self, request, patient_id):
        patient = selectors.patient_get(customer=customer_of(request), patient_id=patient_id)
        value = request.query_params.get("hieOptOut")
        if value not in ("true", "false"):
            raise exceptions.ValidationError({"hieOptOut": 'Must be "true" or "false".'})
        patient = services.patient_hie_opt_out_set(patient=patient, opt_out=value == "true")
        word = "opted out of" if patient.hie_opt_out else "opted into"
        return Response({"id": str(patient.id), "hieOptOut": patient.hie_opt_out, "message": f"Patient {word} HIE"})

    @extend_schema(
        parameters=[OpenApiParameter("hieOptOut", OpenApiTypes.BOOL, required=True)],
        request=None,
        responses=HieOptOutSerializer,
        operation_id="patient_hie_opt_out_post",
    )
    def post(self, request, patient_id):  # the SPEC's verb; the npm SDK sends PUT
        return self.put(request, patient_id)
