"""The webhook message types this service sends (SPEC §6), owned here: the apps that send them import them,
and the admin can tell them apart without importing the senders."""

from __future__ import annotations

PING = "ping"
BULK_PATIENT_CREATE = "medical.bulk-patient-create"
DOCUMENT_DOWNLOAD = "medical.document-download"
