from django.apps import AppConfig


class BulkimportConfig(AppConfig):
    name = "bulkimport"
    verbose_name = "Bulk patient create"
