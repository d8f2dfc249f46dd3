from django.apps import AppConfig


class MetriportBulkConfig(AppConfig):
    name = "metriport_bulk"
    verbose_name = "metriport-bulk"

    def ready(self) -> None:
        from metriport_bulk.api import schema  # noqa: F401 - registers the OpenAPI auth extension
        from metriport_bulk.ops import checks  # noqa: F401 - registers the deploy checks
