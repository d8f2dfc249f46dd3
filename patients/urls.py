from django.urls import path

from patients import apis

urlpatterns = [
    path("medical/v1/facility", apis.FacilityListCreateApi.as_view(), name="facility-list"),
    path("medical/v1/facility/<str:facility_id>", apis.FacilityDetailApi.as_view(), name="facility-detail"),
    path("medical/v1/patient", apis.PatientListApi.as_view(), name="patient-list"),
    path("medical/v1/patient/<str:patient_id>", apis.PatientDetailApi.as_view(), name="patient-detail"),
]
