"""Signals of patient writes, for apps that act on them without patients knowing them (a patient created or
updated through the API gets a Document Query: docqueries listens)."""

from __future__ import annotations

from django.dispatch import Signal

# Sent in the writing transaction when the single-patient API created or updated patients who are not
# opted out: kwargs `customer_id`, `patient_ids` (a list).
patient_written = Signal()
