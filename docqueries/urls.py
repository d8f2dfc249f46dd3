from django.urls import path

from docqueries import apis

urlpatterns = [
    path("medical/v1/document/query", apis.DocumentQueryApi.as_view(), name="document-query"),
    path("medical/v1/document", apis.DocumentListApi.as_view(), name="document-list"),
]
