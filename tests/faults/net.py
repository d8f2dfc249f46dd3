"""Hosts as Linux network namespaces on one private switch (a bridge in a namespace of its own), so a test
can cut, slow and freeze one host's links the way a real network fails. Needs root and iproute2.

Every namespace, link and address exists only inside the namespaces made here: the machine's own network
namespace gains nothing (no interface, route or address), and `destroy()` removes it all. The subnet
(10.213.0.0/24) is private to the switch.

The kernel here has no `sch_netem` qdisc (CONFIG_NET_SCH_NETEM is not set) and the machine has no iptables
or nft binary, so the closest real mechanisms are used:
- a partition between two hosts: each side's ARP entry for the other points to a MAC address nobody has
  (`ip neigh replace ... nud permanent`): their packets are silently dropped, in both directions, while both
  keep talking to every other host; healed by deleting the entries (ARP resolves again);
- a host unreachable: its switch port set down (every frame to and from it dropped);
- latency with jitter: a TCP relay on the database host (`linkproxy`) that holds every segment for 200 ms
  +/- 50 ms while the fault is on, in order, both directions (the workers reach the database through it).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import subprocess
from dataclasses import dataclass, field

SUBNET = "10.213.0"
CLONE_NEWNET = 0x40000000
NOWHERE_MAC = "02:00:00:de:ad:01"  # locally administered, owned by no interface


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {result.stderr.strip()}")
    return result


def netem_available() -> bool:
    """Whether `tc ... netem` works in this kernel (it does not on the machine this campaign was built on)."""
    probe = f"mbf-probe-{os.getpid()}"
    ip("netns", "add", probe)
    try:
        ip("-n", probe, "link", "set", "lo", "up")
        result = subprocess.run(
            ["ip", "netns", "exec", probe, "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "10ms"],
            capture_output=True,
            check=False,
        )
        return result.returncode == 0
    finally:
        ip("netns", "del", probe, check=False)


@dataclass
class Host:
    name: str
    netns: str
    address: str
    port: str  # its interface on the switch (in the switch namespace)

    def exec_prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.netns]


@dataclass
class Network:
    """A switch and its hosts. `tag` makes the namespace names unique to this run."""

    tag: str
    hosts: dict[str, Host] = field(default_factory=dict)

    @property
    def switch(self) -> str:
        return f"mbf{self.tag}-switch"

    def create(self, names_and_octets: dict[str, int]) -> None:
        ip("netns", "add", self.switch)
        ip("-n", self.switch, "link", "set", "lo", "up")
        ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        ip("-n", self.switch, "link", "set", "br0", "up")
        for index, (name, octet) in enumerate(names_and_octets.items()):
            host = Host(name=name, netns=f"mbf{self.tag}-{name}", address=f"{SUBNET}.{octet}", port=f"p{index}")
            ip("netns", "add", host.netns)
            self.hosts[name] = host
            ip("-n", host.netns, "link", "set", "lo", "up")
            ip("-n", self.switch, "link", "add", host.port, "type", "veth", "peer", "name", "eth0", "netns", host.netns)
            ip("-n", self.switch, "link", "set", host.port, "master", "br0")
            ip("-n", self.switch, "link", "set", host.port, "up")
            ip("-n", host.netns, "addr", "add", f"{host.address}/24", "dev", "eth0")
            ip("-n", host.netns, "link", "set", "eth0", "up")

    def namespaces(self) -> list[str]:
        return [h.netns for h in self.hosts.values()] + [self.switch]

    def destroy(self) -> None:
        """SIGKILLs every process left in the namespaces, then deletes them (their links go with them)."""
        destroy_namespaces(self.namespaces())

    # --- faults -------------------------------------------------------------------------------------------

    def partition(self, a: str, b: str) -> None:
        """Silently drops every packet between hosts a and b (both directions); others are unaffected."""
        for near, far in ((a, b), (b, a)):
            ip(
                "-n",
                self.hosts[near].netns,
                "neigh",
                "replace",
                self.hosts[far].address,
                "lladdr",
                NOWHERE_MAC,
                "dev",
                "eth0",
                "nud",
                "permanent",
            )

    def heal(self, a: str, b: str) -> None:
        for near, far in ((a, b), (b, a)):
            ip("-n", self.hosts[near].netns, "neigh", "del", self.hosts[far].address, "dev", "eth0", check=False)

    def unplug(self, name: str) -> None:
        ip("-n", self.switch, "link", "set", self.hosts[name].port, "down")

    def plug(self, name: str) -> None:
        ip("-n", self.switch, "link", "set", self.hosts[name].port, "up")


def destroy_namespaces(names: list[str]) -> None:
    for name in names:
        pids = ip("netns", "pids", name, check=False).stdout.split()
        for pid in pids:
            if pid == str(os.getpid()):  # the campaign itself, on the client host
                continue
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), 9)
    for name in names:
        ip("netns", "del", name, check=False)


def abandoned_namespaces() -> list[str]:
    """Namespaces of campaigns whose process is gone (killed before its teardown): tags are `<pid>` or
    `t<pid>` (the pytest process)."""
    out = ip("netns", "list", check=False).stdout
    found = []
    for line in out.splitlines():
        match = re.match(r"mbft?(\d+)-", line)
        if match and not os.path.exists(f"/proc/{match.group(1)}"):
            found.append(line.split()[0])
    return found


def leftover_namespaces(tag: str) -> list[str]:
    out = ip("netns", "list", check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(f"mbf{tag}-")]


def enter(netns: str) -> int:
    """Moves the calling thread (and the threads it starts later) into `netns`; returns a descriptor of the
    namespace it left, for `leave`. Python 3.11 has no os.setns: libc's setns(2)."""
    libc = ctypes.CDLL(None, use_errno=True)
    previous = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{netns}", os.O_RDONLY)
    try:
        if libc.setns(target, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into {netns}")
    finally:
        os.close(target)
    return previous


def leave(previous: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    try:
        if libc.setns(previous, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns back")
    finally:
        os.close(previous)
