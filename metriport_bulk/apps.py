from django.apps import AppConfig
from django.conf import settings


class MetriportBulkConfig(AppConfig):
    name = "metriport_bulk"
    verbose_name = "metriport-bulk"

    def ready(self) -> None:
        from metriport_bulk.api import schema  # noqa: F401 - registers the OpenAPI auth extension
        from metriport_bulk.ops import checks  # noqa: F401 - registers the deploy checks

        if any(database["ENGINE"] == "metriport_bulk.sqlite" for database in settings.DATABASES.values()):
            # Its writers' turns follow web requests (request_started): connected before the first one.
            from metriport_bulk.sqlite import base  # noqa: F401
