"""Actor messages sent by reference: the services of an app send to its actors without importing them.

A service names the actor it sends to with an `ActorRef` (the actor's name, declared once, beside the
services that send to it); the actors module declares its actor under that name
(`@dramatiq.actor(actor_name=REF.name, ...)`) and calls the services. So the arrows run one way, tasks ->
services -> refs, and a picture of the imports shows no services <-> tasks loop. Each app's
`AppConfig.ready()` imports its actors, so they are registered with the broker before anything is sent; a
test holds every reference to a registered actor of the same name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import dramatiq

# Every reference made, for the test that each names a registered actor.
REFS: list[ActorRef] = []


@dataclass(frozen=True)
class ActorRef:
    name: str

    def __post_init__(self) -> None:
        REFS.append(self)

    def actor(self) -> dramatiq.Actor[..., Any]:
        """The registered actor (the very object the actors module declared: patching it in a test holds)."""
        return dramatiq.get_broker().get_actor(self.name)

    def send(self, *args: Any) -> None:
        self.actor().send(*args)

    def send_later(self, *args: Any, delay_ms: int) -> None:
        self.actor().send_with_options(args=args, delay=delay_ms)
