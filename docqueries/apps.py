from django.apps import AppConfig


class DocqueriesConfig(AppConfig):
    name = "docqueries"
    verbose_name = "Document Queries"

    def ready(self) -> None:
        from docqueries import tasks  # noqa: F401 - registers the actors the services send to by name
        from docqueries.services import on_patient_written
        from patients.signals import patient_written

        patient_written.connect(on_patient_written, dispatch_uid="docqueries.on_patient_written")
