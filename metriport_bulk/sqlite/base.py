"""Django's SQLite backend, with the writers of one process served in the order they came.

SQLite lets one writer at a time hold its database and makes the others poll for it: a thread that finds it
taken sleeps a little longer each time (up to 100 ms) and tries again. The embedded worker's chunks commit one
after the other, so a web request's write (a new bulk request, an admin action) mostly polled while a chunk
held the lock, and waited for most of the import: 11.9 s during a 12 s import of 20,000 rows, 14.4 s during
one of 50,000 (docs/benchmarks.md). Past the 60 s `timeout` it fails with "database is locked".

Here the writers of this process queue on a lock of their own before they ask SQLite for its write lock: a
transaction (`atomic`, which begins IMMEDIATE, taking the write lock up front) from its BEGIN to its COMMIT or
ROLLBACK, and a write in autocommit for its one statement. The lock is handed over in two lines, each first
come, first served: the writes of web requests (a thread between Django's request_started and
request_finished) and everyone else's (the worker's threads, the scheduler). While both have writers waiting
the two lines take turns, so a request's write waits for the transaction in progress (a chunk, about a second
on SQLite) and one more per request's write ahead of it, never for every chunk queued by the worker's threads
(one each), and the worker still gets every other turn however many requests write. Reads never queue (WAL:
they run beside the writer). Other processes on the same file (a management command beside the server) still
meet at SQLite's own lock, as before.
"""

from __future__ import annotations

import collections
import threading

from django.core.signals import request_finished, request_started
from django.db.backends.sqlite3 import base
from django.db.utils import OperationalError

# Statements that write nothing: run in autocommit, they never take SQLite's write lock.
_READS = ("SELECT", "PRAGMA", "EXPLAIN", "WITH")  # WITH: a read unless it ends in a write, checked below
_WRITE_WORDS = (" INSERT ", " UPDATE ", " DELETE ", " REPLACE ")


class FairLock:
    """A lock handed to its waiters in the order they asked for it (threading.Lock wakes any of them, and the
    thread that released it may take it again first), in two lines: `first` waiters (web requests) and the
    others. While both lines wait they take turns, a `first` waiter first. `acquire` gives up after `timeout`
    seconds."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._held = False
        self._lines: tuple[collections.deque[threading.Event], collections.deque[threading.Event]] = (
            collections.deque(),  # first
            collections.deque(),
        )
        self._last_was_first = False  # whom the lock was last given to: the turns between the lines

    def acquire(self, timeout: float, *, first: bool = False) -> bool:
        with self._mutex:
            if not self._held and not any(self._lines):
                self._held = True
                self._last_was_first = first
                return True
            turn = threading.Event()
            self._lines[0 if first else 1].append(turn)
        try:
            if turn.wait(timeout):
                return True  # handed over by release()
        except BaseException:
            # Interrupted while waiting (a worker's time limit raises in its thread): out of the line, and a
            # turn handed over meanwhile goes on to the next, or no writer would ever get one again.
            self._leave(turn, handed_on=True)
            raise
        return self._leave(turn, handed_on=False)

    def _leave(self, turn: threading.Event, *, handed_on: bool) -> bool:
        """A waiter gives up: True when its turn came after all (and it keeps it unless `handed_on`)."""
        with self._mutex:
            if not turn.is_set():
                for line in self._lines:
                    if turn in line:
                        line.remove(turn)
                return False
        if handed_on:
            self.release()
        return True

    def queued(self) -> int:
        """How many wait for it now."""
        with self._mutex:
            return sum(len(line) for line in self._lines)

    def release(self) -> None:
        with self._mutex:
            first, others = self._lines
            if first and (not others or not self._last_was_first):
                self._last_was_first = True
                first.popleft().set()  # still held: now by the next in line
            elif others:
                self._last_was_first = False
                others.popleft().set()
            else:
                self._held = False


_serving = threading.local()


def serving_request() -> bool:
    """Whether this thread is serving a web request now (between Django's request_started and
    request_finished, which the handler sends in the request's thread)."""
    return getattr(_serving, "request", False)


def _request_started(**kwargs: object) -> None:
    _serving.request = True


def _request_finished(**kwargs: object) -> None:
    _serving.request = False


# Connected when this module is first imported: the app's ready() imports it for a database on this backend,
# before the first request.
request_started.connect(_request_started, dispatch_uid="metriport_bulk.sqlite.request_started")
request_finished.connect(_request_finished, dispatch_uid="metriport_bulk.sqlite.request_finished")

_locks: dict[str, FairLock] = {}
_locks_mutex = threading.Lock()


def write_lock(name: str) -> FairLock:
    """The process's lock for the database file `name`."""
    with _locks_mutex:
        return _locks.setdefault(name, FairLock())


def is_write(sql: str) -> bool:
    head = sql.lstrip()[:8].upper()
    if not head.startswith(_READS):
        return True
    return head.startswith("WITH") and any(word in f" {sql.upper()} " for word in _WRITE_WORDS)


class DatabaseWrapper(base.DatabaseWrapper):
    """One per thread, as Django's: `_holds` says whether this connection holds the process's write lock."""

    _holds = False

    def _write_lock(self) -> FairLock:
        return write_lock(str(self.settings_dict["NAME"]))

    def take_write_turn(self) -> None:
        timeout = float(self.settings_dict.get("OPTIONS", {}).get("timeout", 5))
        if not self._write_lock().acquire(timeout, first=serving_request()):
            raise OperationalError(f"database is locked: no turn to write within {timeout:g} s")
        self._holds = True

    def end_write_turn(self) -> None:
        if self._holds:
            self._holds = False
            self._write_lock().release()

    def _start_transaction_under_autocommit(self) -> None:
        self.take_write_turn()
        try:
            super()._start_transaction_under_autocommit()  # type: ignore[misc]  # Django's, not in its stubs
        except BaseException:
            self.end_write_turn()
            raise

    def _commit(self) -> None:
        try:
            super()._commit()  # type: ignore[misc]
        finally:
            self.end_write_turn()

    def _rollback(self) -> None:
        try:
            super()._rollback()  # type: ignore[misc]
        finally:
            self.end_write_turn()

    def _close(self) -> None:
        try:
            super()._close()  # type: ignore[misc]
        finally:
            self.end_write_turn()

    def create_cursor(self, name=None):
        return self.connection.cursor(factory=lambda connection: FairCursorWrapper(connection, self))


class FairCursorWrapper(base.SQLiteCursorWrapper):
    """A write in autocommit (no transaction open) takes its turn for its one statement."""

    def __init__(self, connection, wrapper: DatabaseWrapper) -> None:
        super().__init__(connection)
        self._wrapper = wrapper

    def execute(self, query, params=None):
        return self._in_turn(query, super().execute, query, params)

    def executemany(self, query, param_list):
        return self._in_turn(query, super().executemany, query, param_list)

    def _in_turn(self, query: str, run, *args):
        if self._wrapper._holds or self.connection.in_transaction or not is_write(query):
            return run(*args)
        self._wrapper.take_write_turn()
        try:
            return run(*args)
        finally:
            self._wrapper.end_write_turn()
