from django.urls import path

from patients import apis

urlpatterns = [
    path("medical/v1/facility", apis.FacilityListCreateApi.as_view(), name="facility-list"),
    path("medical/v1/facility/<str:facility_id>", apis.FacilityDetailApi.as_view(), name="facility-detail"),
    path("medical/v1/patient", apis.PatientListCreateApi.as_view(), name="patient-list"),
    # Fixed words before the id pattern: "match" and "external-id" are not patient ids.
    path("medical/v1/patient/match", apis.PatientMatchApi.as_view(), name="patient-match"),
    path("medical/v1/patient/external-id", apis.PatientExternalIdApi.as_view(), name="patient-external-id"),
    path("medical/v1/patient/<str:patient_id>", apis.PatientDetailApi.as_view(), name="patient-detail"),
    path(
        "medical/v1/patient/<str:patient_id>/hie-opt-out",
        apis.PatientHieOptOutApi.as_view(),
        name="patient-hie-opt-out",
    ),
]
