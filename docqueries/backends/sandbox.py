"""The sandbox network (default): deterministic, like a vendor sandbox. A query is answered once
settings.DOCQUERY_SANDBOX_DELAY_SECONDS have passed since it started (the first call answers Pending, so no
worker thread ever sleeps), with 0 to 3 synthetic documents derived from a hash of the patient id: the same
patient always gets the same documents."""

from __future__ import annotations

import hashlib
import uuid

from django.conf import settings
from django.utils import timezone

from docqueries.backends.base import Completed, Pending, QueryInput

DOCUMENT_KINDS = (
    ("ccd.xml", "application/xml", "Continuity of Care Document"),
    ("discharge-summary.pdf", "application/pdf", "Discharge summary"),
    ("lab-results.xml", "application/xml", "Laboratory results"),
    ("progress-note.pdf", "application/pdf", "Progress note"),
    ("immunizations.xml", "application/xml", "Immunization record"),
    ("imaging-report.pdf", "application/pdf", "Imaging report"),
)


def sandbox_documents(patient_id: str) -> list[dict]:
    digest = hashlib.sha256(f"metriport-bulk-sandbox:{patient_id}".encode()).digest()
    documents = []
    for index in range(digest[0] % 4):
        document_digest = hashlib.sha256(digest + bytes([index])).digest()
        suffix, content_type, description = DOCUMENT_KINDS[document_digest[0] % len(DOCUMENT_KINDS)]
        document_id = str(uuid.UUID(bytes=document_digest[:16], version=4))
        documents.append(
            {
                "id": document_id,
                "fileName": f"{document_id}-{suffix}",
                "contentType": content_type,
                "size": 2_048 + int.from_bytes(document_digest[16:19], "big") % 500_000,
                "description": description,
            }
        )
    return documents


class SandboxBackend:
    name = "sandbox"
    rate_limited = False
    set_based = True

    def first_step_after(self) -> float:
        """The simulated network answers this long after the query started: its first step is due then."""
        return settings.DOCQUERY_SANDBOX_DELAY_SECONDS

    def run_many(self, queries: list[QueryInput]) -> list[Completed | Pending]:
        return [self.run(query) for query in queries]

    def run(self, query: QueryInput) -> Completed | Pending:
        remaining = settings.DOCQUERY_SANDBOX_DELAY_SECONDS - (timezone.now() - query.started_at).total_seconds()
        if remaining > 0:
            return Pending(retry_after=remaining)
        return Completed(documents=sandbox_documents(query.patient_id))
