"""The webhook message types this service sends (SPEC §6), owned here: the apps that send them import them,
and the admin can tell them apart without importing the senders."""

from __future__ import annotations

import uuid

from django.db.models import IntegerChoices

# A customer or message id: a UUID read from a row, or its text (an actor message, a command's argument).
Id = uuid.UUID | str

PING = "ping"
BULK_PATIENT_CREATE = "medical.bulk-patient-create"
DOCUMENT_DOWNLOAD = "medical.document-download"


class Lane(IntegerChoices):
    """Delivery lanes, chosen by whoever creates a message: a customer's due messages go lane by lane (a lower
    value first), oldest due first within a lane. Webhooks knows no message type: the caller says which of its
    messages must not wait behind the others (a bulk request's status, say, ahead of its document notices)."""

    PRIORITY = 0, "priority"
    STANDARD = 1, "standard"
