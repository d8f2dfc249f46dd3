"""Metriport's cohort routes (`/medical/v1/cohort…`, `/medical/v1/patient/{id}/cohort`), as its npm SDK calls
them: listCohorts, getCohort, updateCohort (PATCH with If-Match), deleteCohort, addPatientsToCohort,
removePatientsFromCohort, listPatientsInCohort/getCohortPatientsPage, addPatientToCohorts,
listCohortsForPatient; and creation (POST /medical/v1/cohort, an API call without an SDK method)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import APIView

from cohorts import selectors, services
from cohorts.serializers import (
    CohortCreateSerializer,
    CohortIdsSerializer,
    CohortListSerializer,
    CohortSerializer,
    CohortUpdateSerializer,
    CohortWithMessageSerializer,
    PatientIdsSerializer,
)
from metriport_bulk.api.errors import PreconditionFailed
from metriport_bulk.api.pagination import MetriportCursorPagination
from patients.authentication import customer_of
from patients.selectors import patient_get
from patients.serializers import PatientSerializer

IF_MATCH = OpenApiParameter(
    "If-Match", str, OpenApiParameter.HEADER, description="The eTag last read; 412 when it is not current."
)


class CohortPatientsPagination(MetriportCursorPagination):
    items_key = "patients"
    max_page_size = 100  # Metriport's cohortPatientMaxPageSize


def _refusal(exc: services.CohortError) -> exceptions.APIException:
    return exceptions.NotFound(str(exc)) if exc.status == 404 else exceptions.ValidationError(str(exc))


def _cohort_answer(request, cohort_id, *, status_code: int = status.HTTP_200_OK) -> Response:
    cohort = selectors.cohort_get(customer=customer_of(request), cohort_id=cohort_id)  # size read fresh
    return Response(CohortSerializer(cohort).data, status=status_code)


def _with_message(request, cohort_id, message: str, status_code: int) -> Response:
    cohort = selectors.cohort_get(customer=customer_of(request), cohort_id=cohort_id)
    return Response({"message": message, "cohort": CohortSerializer(cohort).data}, status=status_code)


class CohortListCreateApi(APIView):
    @extend_schema(responses=CohortListSerializer, operation_id="cohort_list")
    def get(self, request):
        cohorts = selectors.cohort_list(customer=customer_of(request))
        return Response({"cohorts": CohortSerializer(cohorts, many=True).data})

    @extend_schema(
        request=CohortCreateSerializer,
        responses={201: CohortSerializer},
        operation_id="cohort_create",
        description="Creates a cohort; names are unique per customer, compared ignoring case (400 when taken).",
    )
    def post(self, request):
        serializer = CohortCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            cohort = services.cohort_create(customer=customer_of(request), **serializer.changes())
        except services.CohortError as exc:
            raise _refusal(exc) from None
        return _cohort_answer(request, cohort.id, status_code=status.HTTP_201_CREATED)


class CohortDetailApi(APIView):
    @extend_schema(responses=CohortSerializer, operation_id="cohort_get")
    def get(self, request, cohort_id):
        return _cohort_answer(request, cohort_id)

    @extend_schema(
        parameters=[IF_MATCH],
        request=CohortUpdateSerializer,
        responses=CohortSerializer,
        operation_id="cohort_update",
        description="A partial update: only the fields sent change; settings merge deeply. 412 on a stale eTag.",
    )
    def patch(self, request, cohort_id):
        cohort = selectors.cohort_get(customer=customer_of(request), cohort_id=cohort_id)
        serializer = CohortUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        changes = serializer.changes()
        body_etag = changes.pop("eTag", None)
        try:
            services.cohort_update(
                cohort=cohort, if_match=request.headers.get("If-Match") or body_etag, changes=changes
            )
        except services.StaleCohortETag:
            raise PreconditionFailed() from None
        except services.CohortError as exc:
            raise _refusal(exc) from None
        return _cohort_answer(request, cohort.id)

    @extend_schema(
        parameters=[IF_MATCH],
        request=CohortUpdateSerializer,
        responses=CohortSerializer,
        operation_id="cohort_update_put",
        description="The same partial update (Metriport's documented verb; its SDK sends PATCH).",
    )
    def put(self, request, cohort_id):
        return self.patch(request, cohort_id)

    @extend_schema(request=None, responses={204: None}, operation_id="cohort_delete")
    def delete(self, request, cohort_id):
        cohort = selectors.cohort_get(customer=customer_of(request), cohort_id=cohort_id)
        try:
            services.cohort_delete(cohort=cohort)
        except services.CohortError as exc:
            raise _refusal(exc) from None
        return Response(status=status.HTTP_204_NO_CONTENT)


class CohortPatientsApi(APIView):
    pagination_class = CohortPatientsPagination

    @extend_schema(
        parameters=[
            OpenApiParameter("fromItem", str),
            OpenApiParameter("toItem", str),
            OpenApiParameter("count", int, description="Page size, at most 100."),
        ],
        responses=PatientSerializer(many=True),
        operation_id="cohort_patients_list",
    )
    def get(self, request, cohort_id):
        cohort = selectors.cohort_get(customer=customer_of(request), cohort_id=cohort_id)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(selectors.cohort_patients(cohort=cohort), request, view=self)
        return paginator.get_paginated_response(PatientSerializer(page, many=True).data)

    @extend_schema(
        request=PatientIdsSerializer,
        responses={201: CohortWithMessageSerializer},
        operation_id="cohort_patients_add",
        description='Adds the patients (`patientIds`), or every patient of the customer (`"allPatients": true`).',
    )
    def post(self, request, cohort_id):
        return _members_change(
            request, cohort_id, services.cohort_patients_add, "Patient(s) added to cohort", status.HTTP_201_CREATED
        )

    @extend_schema(
        request=PatientIdsSerializer,
        responses={200: CohortWithMessageSerializer},
        operation_id="cohort_patients_remove",
        description="Removes the patients from the cohort (the patients themselves stay).",
    )
    def delete(self, request, cohort_id):
        return _members_change(
            request, cohort_id, services.cohort_patients_remove, "Patient(s) removed from cohort", status.HTTP_200_OK
        )


def _members_change(request, cohort_id, change, message: str, status_code: int) -> Response:
    """Adds or removes (`change`) the body's patients (`patientIds`, or `"allPatients": true`)."""
    cohort = selectors.cohort_get(customer=customer_of(request), cohort_id=cohort_id)
    serializer = PatientIdsSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    try:
        change(
            cohort=cohort,
            patient_ids=serializer.validated_data.get("patientIds"),
            all_patients=serializer.validated_data.get("allPatients") is True,
        )
    except services.CohortError as exc:
        raise _refusal(exc) from None
    return _with_message(request, cohort.id, message, status_code)


class PatientCohortsApi(APIView):
    @extend_schema(responses=CohortListSerializer, operation_id="patient_cohorts_list")
    def get(self, request, patient_id):
        patient = patient_get(customer=customer_of(request), patient_id=patient_id)
        return Response({"cohorts": CohortSerializer(selectors.cohorts_of_patient(patient=patient), many=True).data})

    @extend_schema(request=CohortIdsSerializer, responses=CohortListSerializer, operation_id="patient_cohorts_add")
    def post(self, request, patient_id):
        patient = patient_get(customer=customer_of(request), patient_id=patient_id)
        serializer = CohortIdsSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            services.patient_cohorts_add(patient=patient, cohort_ids=serializer.validated_data["cohortIds"])
        except services.CohortError as exc:
            raise _refusal(exc) from None
        return Response({"cohorts": CohortSerializer(selectors.cohorts_of_patient(patient=patient), many=True).data})
