"""A TCP relay that can add latency with jitter, the stand-in for `tc netem` (absent from this kernel).

    python -m tests.faults.linkproxy LISTEN_HOST:PORT TARGET_HOST:PORT [--delay-ms 200 --jitter-ms 50]

SIGUSR1 turns the delay on, SIGUSR2 off. While on, every segment read from either side is written to the
other `delay +/- jitter` ms after it arrived, in order (as netem does with a rate: no reordering). A target
that refuses or drops a connection closes the client's side too, as a dead server would.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import signal


class Link:
    def __init__(self, delay_ms: float, jitter_ms: float) -> None:
        self.on = False
        self.delay_ms = delay_ms
        self.jitter_ms = jitter_ms
        self.rng = random.Random(7)

    def delay(self) -> float:
        if not self.on:
            return 0.0
        return max(0.0, self.rng.uniform(self.delay_ms - self.jitter_ms, self.delay_ms + self.jitter_ms)) / 1000


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, link: Link) -> None:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def read() -> None:
        try:
            while data := await reader.read(65536):
                queue.put_nowait((loop.time() + link.delay(), data))
        except (ConnectionError, OSError):
            pass
        queue.put_nowait((0.0, b""))

    reading = asyncio.create_task(read())
    try:
        while True:
            due, data = await queue.get()
            if not data:
                break
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        reading.cancel()
        writer.close()


async def _serve(listen: tuple[str, int], target: tuple[str, int], link: Link) -> None:
    async def handle(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection(*target)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(_pump(client_reader, server_writer, link), _pump(server_reader, client_writer, link))

    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, lambda: setattr(link, "on", True))
    loop.add_signal_handler(signal.SIGUSR2, lambda: setattr(link, "on", False))
    server = await asyncio.start_server(handle, *listen, reuse_address=True)
    async with server:
        await server.serve_forever()


def _address(text: str) -> tuple[str, int]:
    host, port = text.rsplit(":", 1)
    return host, int(port)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("listen")
    parser.add_argument("target")
    parser.add_argument("--delay-ms", type=float, default=200)
    parser.add_argument("--jitter-ms", type=float, default=50)
    args = parser.parse_args()
    asyncio.run(_serve(_address(args.listen), _address(args.target), Link(args.delay_ms, args.jitter_ms)))


if __name__ == "__main__":
    main()
