from django.contrib import admin
from django.http import JsonResponse
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.views import SpectacularJSONAPIView, SpectacularSwaggerView

from metriport_bulk.api.errors import json_405
from metriport_bulk.ops.metrics import metrics
from metriport_bulk.ops.readiness import readyz


@csrf_exempt  # no cookie, no state: a POST is answered 405, not with Django's CSRF page
def healthz(request) -> JsonResponse:
    if request.method not in ("GET", "HEAD"):
        return json_405(request, allowed=["GET", "HEAD"])
    return JsonResponse({"status": "ok"})


urlpatterns = [
    path("admin/", admin.site.urls),
    path("openapi.json", SpectacularJSONAPIView.as_view(), name="openapi-schema"),
    path("docs", SpectacularSwaggerView.as_view(url_name="openapi-schema"), name="docs"),
    path("healthz", healthz),
    path("readyz", readyz),
    path("metrics", metrics),
    # Bulk routes first: /medical/v1/patient/bulk must not be read as a patient id.
    path("", include("bulkimport.urls")),
    path("", include("patients.urls")),
    path("", include("webhooks.urls")),
    path("", include("docqueries.urls")),
    path("", include("cohorts.urls")),
]

handler400 = "metriport_bulk.api.errors.json_400"
handler403 = "metriport_bulk.api.errors.json_403"
handler404 = "metriport_bulk.api.errors.json_404"
handler500 = "metriport_bulk.api.errors.json_500"
