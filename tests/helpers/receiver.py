"""The real local HTTP receiver and the hostile ones used by the tests (they live in devtools so the demo
and the benches can use them too)."""

from devtools.receiver import HostileReceiver, Received, Receiver, Reply  # noqa: F401
