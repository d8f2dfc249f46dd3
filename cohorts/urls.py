from django.urls import path

from cohorts import apis

urlpatterns = [
    path("medical/v1/cohort", apis.CohortListCreateApi.as_view(), name="cohort-list"),
    path("medical/v1/cohort/<str:cohort_id>", apis.CohortDetailApi.as_view(), name="cohort-detail"),
    path("medical/v1/cohort/<str:cohort_id>/patient", apis.CohortPatientsApi.as_view(), name="cohort-patients"),
    path("medical/v1/patient/<str:patient_id>/cohort", apis.PatientCohortsApi.as_view(), name="patient-cohorts"),
]
