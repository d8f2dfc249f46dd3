from django.apps import AppConfig


class BulkimportConfig(AppConfig):
    name = "bulkimport"
    verbose_name = "Bulk patient create"

    def ready(self) -> None:
        from bulkimport import services, tasks  # noqa: F401 - tasks: registers the actors sent to by name
        from docqueries.signals import document_queries_ended

        document_queries_ended.connect(services.on_document_queries_ended, dispatch_uid="bulk-documents-wait")
