"""Django's SQLite backend, with the writers of one process served in the order they came.

SQLite lets one writer at a time hold its database and makes the others poll for it: a thread that finds it
taken sleeps a little longer each time (up to 100 ms) and tries again. The embedded worker's chunks commit one
after the other, so a web request's write (a new bulk request, an admin action) mostly polled while a chunk
held the lock, and waited for most of the import: 11.9 s during a 12 s import of 20,000 rows, 14.4 s during
one of 50,000 (docs/benchmarks.md). Past the 60 s `timeout` it fails with "database is locked".

Here the writers of this process queue on a first-come, first-served lock before they ask SQLite for its
write lock: a transaction (`atomic`, which begins IMMEDIATE, taking the write lock up front) from its BEGIN to
its COMMIT or ROLLBACK, and a write in autocommit for its one statement. A request's write then waits for the
transactions queued before it (a chunk each, one per worker thread at most), not for every chunk left. Reads
never queue (WAL: they run beside the writer). Other processes on the same file (a management command beside
the server) still meet at SQLite's own lock, as before.
"""

from __future__ import annotations

import collections
import threading

from django.db.backends.sqlite3 import base
from django.db.utils import OperationalError

# Statements that write nothing: run in autocommit, they never take SQLite's write lock.
_READS = ("SELECT", "PRAGMA", "EXPLAIN", "WITH")  # WITH: a read unless it ends in a write, checked below
_WRITE_WORDS = (" INSERT ", " UPDATE ", " DELETE ", " REPLACE ")


class FairLock:
    """A lock handed to its waiters in the order they asked for it (threading.Lock wakes any of them, and the
    thread that released it may take it again first). `acquire` gives up after `timeout` seconds."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._held = False
        self._waiters: collections.deque[threading.Event] = collections.deque()

    def acquire(self, timeout: float) -> bool:
        with self._mutex:
            if not self._held and not self._waiters:
                self._held = True
                return True
            turn = threading.Event()
            self._waiters.append(turn)
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
                self._waiters.remove(turn)
                return False
        if handed_on:
            self.release()
        return True

    def queued(self) -> int:
        """How many wait for it now."""
        with self._mutex:
            return len(self._waiters)

    def release(self) -> None:
        with self._mutex:
            if self._waiters:
                self._waiters.popleft().set()  # still held: now by the next in line
            else:
                self._held = False


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
        if not self._write_lock().acquire(timeout):
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
