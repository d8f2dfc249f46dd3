from django.apps import AppConfig


class DocqueriesConfig(AppConfig):
    name = "docqueries"
    verbose_name = "Document Queries"
