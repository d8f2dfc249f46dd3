"""Facility and patient endpoints (SPEC §1). Views parse input and call services/selectors."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from metriport_bulk.api.authentication import customer_of
from metriport_bulk.api.pagination import paginator_for
from patients import selectors, services
from patients.serializers import FacilitySerializer, PatientSerializer

FACILITY_ID = OpenApiParameter("facilityId", str, description="Only items of this facility.")


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
        facility = services.facility_update(facility=facility, **serializer.validated_data)
        return Response(FacilitySerializer(facility).data)


class PatientListApi(APIView):
    pagination_class = paginator_for("patients")

    @extend_schema(parameters=[FACILITY_ID], responses=PatientSerializer(many=True), operation_id="patient_list")
    def get(self, request):
        patients = selectors.patient_list(
            customer=customer_of(request), facility_id=request.query_params.get("facilityId")
        )
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(patients, request, view=self)
        return paginator.get_paginated_response(PatientSerializer(page, many=True).data)


class PatientDetailApi(APIView):
    @extend_schema(responses=PatientSerializer, operation_id="patient_get")
    def get(self, request, patient_id):
        return Response(
            PatientSerializer(selectors.patient_get(customer=customer_of(request), patient_id=patient_id)).data
        )
