"""The real local HTTP receiver used by the tests (it lives in devtools so the demo can use it too)."""

from metriport_bulk.devtools.receiver import Received, Receiver, Reply  # noqa: F401
