"""The embedded default's SQLite backend (metriport_bulk/sqlite): the writers of one process take turns in
the order they came, in two lines (web requests, and the worker's threads and the rest) that take turns
while both wait, so a web request's write waits for the transaction in progress, never for every chunk of
an import that commits one after the other nor for the chunks the worker's other threads queued. Run on a
database file of its own, in both passes."""

from __future__ import annotations

import threading

import pytest
from django.core.signals import request_finished, request_started
from django.db.utils import ConnectionHandler, OperationalError

from metriport_bulk.sqlite.base import FairLock, is_write, serving_request, write_lock
from tests.helpers.waiting import wait_until

DEADLINE = 30  # seconds a condition may take on a busy machine


def served_order(names: list[str], *, requests: tuple[str, ...] = ()) -> list[str]:
    """A held lock, a waiter per name queued in this order (`requests`: in the web requests' line), then
    released: the order the waiters got it in. The lock is free again after."""
    lock, order = FairLock(), []
    assert lock.acquire(timeout=1)

    def waiter(name: str) -> None:
        assert lock.acquire(timeout=DEADLINE, first=name in requests)
        order.append(name)
        lock.release()

    threads = []
    for position, name in enumerate(names, start=1):
        threads.append(threading.Thread(target=waiter, args=(name,)))
        threads[-1].start()
        wait_until(lambda position=position: lock.queued() == position, DEADLINE, f"{name} in line")
    lock.release()
    for thread in threads:
        thread.join(DEADLINE)
    assert lock.acquire(timeout=0)  # free again
    return order


def test_the_lock_is_handed_to_its_waiters_in_the_order_they_came():
    assert served_order(list("abcd")) == list("abcd")


def test_web_requests_and_the_others_take_turns_while_both_wait_a_request_first():
    # Come in this order: three of the worker's, then two requests' writes.
    order = served_order(
        ["worker 1", "worker 2", "worker 3", "request 1", "request 2"], requests=("request 1", "request 2")
    )
    assert order == ["request 1", "worker 1", "request 2", "worker 2", "worker 3"]


def test_a_waiter_that_gives_up_leaves_the_line_to_the_next():
    lock = FairLock()
    assert lock.acquire(timeout=1)
    assert not lock.acquire(timeout=0.05)
    assert lock.queued() == 0
    got = threading.Event()
    thread = threading.Thread(target=lambda: lock.acquire(timeout=DEADLINE) and got.set())
    thread.start()
    wait_until(lambda: lock.queued() == 1, DEADLINE, "the next in line")
    lock.release()
    thread.join(DEADLINE)
    assert got.is_set()
    assert not lock.acquire(timeout=0)  # held by the thread it was handed to


def test_a_waiter_interrupted_in_line_leaves_it_and_passes_on_a_turn_it_was_given():
    """A worker's time limit raises inside its thread, wherever it is: a writer interrupted while in line
    must neither stay in it nor keep a turn handed to it, or no writer would get one again."""
    lock = FairLock()
    assert lock.acquire(timeout=1)

    class TimeLimit(BaseException):
        pass

    class Interrupting(threading.Event):
        def wait(self, timeout=None):
            lock.release()  # the turn is handed to this waiter just as the interruption comes
            raise TimeLimit

    with pytest.MonkeyPatch.context() as patched:
        patched.setattr(threading, "Event", Interrupting)
        with pytest.raises(TimeLimit):
            lock.acquire(timeout=DEADLINE)
    assert lock.queued() == 0
    assert lock.acquire(timeout=0)  # passed on: free
    lock.release()
    assert lock.acquire(timeout=1)

    class Interrupted(threading.Event):
        def wait(self, timeout=None):
            raise TimeLimit  # interrupted while the lock is still held by the first

    with pytest.MonkeyPatch.context() as patched:
        patched.setattr(threading, "Event", Interrupted)
        with pytest.raises(TimeLimit):
            lock.acquire(timeout=DEADLINE)
    assert lock.queued() == 0
    lock.release()
    assert lock.acquire(timeout=0)


@pytest.mark.parametrize(
    ("sql", "writes"),
    [
        ("SELECT 1", False),
        ("  pragma foreign_keys", False),
        ("WITH x AS (SELECT 1) SELECT * FROM x", False),
        ("WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x", True),
        ('UPDATE "patients_customer" SET "name" = %s', True),
        ("INSERT INTO t VALUES (1)", True),
        ("CREATE TABLE t (id integer)", True),
        ("VACUUM", True),
    ],
)
def test_what_counts_as_a_write(sql, writes):
    assert is_write(sql) is writes


@pytest.fixture
def sqlite_db(tmp_path, django_db_blocker):
    """A ConnectionHandler of one database, a file of its own, on the embedded default's backend; each thread
    gets its own connection from it (as Django's), closed at the end. Not the suite's database: pytest-django
    is only told to let it be opened."""
    path = str(tmp_path / "turns.sqlite3")
    handler = ConnectionHandler(
        {
            "default": {
                "ENGINE": "metriport_bulk.sqlite",
                "NAME": path,
                "OPTIONS": {
                    "transaction_mode": "IMMEDIATE",
                    "timeout": DEADLINE,
                    "init_command": "PRAGMA journal_mode=WAL;",
                },
            }
        }
    )
    with django_db_blocker.unblock():
        connection = handler["default"]
        connection.cursor().execute("CREATE TABLE t (id integer PRIMARY KEY AUTOINCREMENT, who text)")
        yield handler, path
        handler.close_all()


def begin(connection) -> None:
    """What `atomic` does first on SQLite (its outermost block)."""
    connection.set_autocommit(False, force_begin_transaction_with_broken_autocommit=True)


def commit(connection) -> None:
    connection.commit()
    connection.set_autocommit(True)


def write(handler, name: str, *, in_transaction: bool) -> None:
    """One row written by this thread's connection, in a transaction of its own or in autocommit; the
    connection closed after."""
    connection = handler["default"]
    try:
        if in_transaction:
            begin(connection)
            connection.cursor().execute("INSERT INTO t (who) VALUES (%s)", [name])
            commit(connection)
        else:
            connection.cursor().execute("INSERT INTO t (who) VALUES (%s)", [name])
    finally:
        connection.close()


def chunks(handler, path: str, count: int, *, sixth_open: threading.Event, waiting: int) -> None:
    """`count` transactions one after the other (an import's chunks); the sixth stays open until `waiting`
    other writes are in line."""
    connection = handler["default"]
    try:
        for index in range(count):
            begin(connection)
            connection.cursor().execute("INSERT INTO t (who) VALUES (%s)", [f"chunk {index}"])
            if index == 5:
                sixth_open.set()
                wait_until(lambda: write_lock(path).queued() == waiting, DEADLINE, "the other writes in line")
            commit(connection)
    finally:
        connection.close()


def written(handler) -> list[str]:
    return [who for (who,) in handler["default"].cursor().execute("SELECT who FROM t ORDER BY id").fetchall()]


@pytest.mark.parametrize("kind", ["transaction", "autocommit"])
def test_a_write_waits_for_the_transaction_before_it_not_for_every_one_after(sqlite_db, kind):
    """A thread commits 20 transactions one after the other (an import's chunks). Another thread's write,
    asked for while the sixth is open, is written right after it: before, SQLite's polling let the chunks
    that followed take the lock first, and the write waited for all of them."""
    handler, path = sqlite_db
    sixth_open = threading.Event()
    importer = threading.Thread(
        target=chunks, args=(handler, path, 20), kwargs={"sixth_open": sixth_open, "waiting": 1}
    )
    importer.start()
    assert sixth_open.wait(DEADLINE)
    writer = threading.Thread(target=write, args=(handler, "request"), kwargs={"in_transaction": kind == "transaction"})
    writer.start()
    importer.join(DEADLINE)
    writer.join(DEADLINE)
    assert written(handler) == [f"chunk {i}" for i in range(6)] + ["request"] + [f"chunk {i}" for i in range(6, 20)]


@pytest.mark.parametrize("kind", ["transaction", "autocommit"])
def test_a_web_requests_write_goes_before_the_chunks_the_workers_other_threads_queued(sqlite_db, kind):
    """The worker's other threads each queue a chunk while one thread's sixth chunk is open, then a web
    request writes (its thread between request_started and request_finished, as Django's handler sends them):
    the request's write comes right after the open chunk, not after the queued ones; the worker's threads go
    on in their order. In one line, the request's write came after all three."""
    handler, path = sqlite_db
    sixth_open = threading.Event()
    served: list[bool] = []

    def request() -> None:
        request_started.send(sender=None)
        try:
            served.append(serving_request())
            write(handler, "request", in_transaction=kind == "transaction")
        finally:
            request_finished.send(sender=None)
            served.append(serving_request())

    importer = threading.Thread(target=chunks, args=(handler, path, 8), kwargs={"sixth_open": sixth_open, "waiting": 4})
    importer.start()
    assert sixth_open.wait(DEADLINE)
    threads = []
    for position, name in enumerate(["thread 2", "thread 3", "thread 4"], start=1):
        threads.append(threading.Thread(target=write, args=(handler, name), kwargs={"in_transaction": True}))
        threads[-1].start()
        wait_until(lambda position=position: write_lock(path).queued() == position, DEADLINE, f"{name} in line")
    threads.append(threading.Thread(target=request))
    threads[-1].start()
    for thread in [importer, *threads]:
        thread.join(DEADLINE)
    assert written(handler) == [
        *(f"chunk {i}" for i in range(6)),
        "request",
        "thread 2",
        "thread 3",
        "thread 4",
        *(f"chunk {i}" for i in range(6, 8)),
    ]
    assert served == [True, False]


def test_a_write_that_gets_no_turn_in_time_fails_as_sqlite_would_and_leaves_the_line(sqlite_db):
    handler, path = sqlite_db
    holder = handler["default"]
    begin(holder)
    holder.cursor().execute("INSERT INTO t (who) VALUES ('holder')")
    failed: list[BaseException] = []

    def impatient() -> None:
        connection = handler["default"]
        connection.settings_dict = {**connection.settings_dict, "OPTIONS": {"timeout": 0.1}}
        try:
            connection.cursor().execute("INSERT INTO t (who) VALUES ('impatient')")
        except OperationalError as exc:
            failed.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=impatient)
    thread.start()
    thread.join(DEADLINE)
    assert [str(exc) for exc in failed] == ["database is locked: no turn to write within 0.1 s"]
    assert write_lock(path).queued() == 0
    commit(holder)
    holder.cursor().execute("INSERT INTO t (who) VALUES ('after')")  # the turn came back: nothing is stuck
    assert [who for (who,) in holder.cursor().execute("SELECT who FROM t ORDER BY id")] == ["holder", "after"]
