from django.urls import path

from bulkimport import apis, views

urlpatterns = [
    path("medical/v1/patient/bulk", apis.BulkCreateListApi.as_view(), name="bulk-list"),
    path("medical/v1/patient/bulk/template", apis.BulkTemplateApi.as_view(), name="bulk-template"),
    path("medical/v1/patient/bulk/<str:request_id>", apis.BulkDetailApi.as_view(), name="bulk-detail"),
    path("medical/v1/patient/bulk/<str:request_id>/confirm", apis.BulkConfirmApi.as_view(), name="bulk-confirm"),
    path("medical/v1/patient/bulk/<str:request_id>/absent", apis.BulkAbsentApi.as_view(), name="bulk-absent"),
    path("uploads/bulk/<str:token>", apis.BulkUploadApi.as_view(), name="bulk-upload"),
    path("files/<str:token>", apis.FileDownloadApi.as_view(), name="file-download"),
    path("docs/csv-format", views.csv_format_page, name="docs-csv-format"),
    path("docs/csv-format/template.csv", views.csv_template_download, name="docs-csv-template"),
]
