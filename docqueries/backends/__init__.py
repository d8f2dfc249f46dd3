"""Pluggable Document Query backends, chosen by settings.DOCQUERY_BACKEND (`sandbox` or `http`)."""

from __future__ import annotations

from django.conf import settings

from docqueries.backends.base import Backend, Completed, Pending, PermanentError, QueryInput, TransientError

__all__ = ["Backend", "Completed", "Pending", "PermanentError", "QueryInput", "TransientError", "get_backend"]


def get_backend(name: str | None = None) -> Backend:
    name = name or settings.DOCQUERY_BACKEND
    if name == "sandbox":
        from docqueries.backends.sandbox import SandboxBackend

        return SandboxBackend()
    if name == "http":
        from docqueries.backends.http import HttpGatewayBackend

        return HttpGatewayBackend()
    raise ValueError(f"DOCQUERY_BACKEND must be 'sandbox' or 'http', not {name!r}")
