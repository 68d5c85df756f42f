"""Load a dataset with binary COPY into tables without their secondary indexes and foreign keys,
build those after, then VACUUM ANALYZE; skip when already loaded.

Each table is one streamed ``COPY ... FROM STDIN (FORMAT binary)``. Batches are generated,
validated and encoded (pgpq: Arrow → PostgreSQL binary) in a worker thread while the event loop
sends the previous ones, so generation overlaps the server's work instead of alternating with it
(NumPy, pyarrow and pgpq release the GIL for their heavy parts). A small queue bounds memory.

The tables are filled at once, each on a connection of its own, and each builds its indexes and is
analysed as soon as its own COPY ends (``fill_tables``): with the foreign keys deferred nothing
orders them, and the builds of the tables done first overlap the generation of the largest one.

The dataset fingerprint is written to ``taskbench_meta`` only after every table is loaded and
analysed, so an interrupted or failed load is never taken for a complete dataset: the next run
sees no fingerprint and loads again from scratch.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass

import asyncpg
import pgpq
import pgpq.encoders
import pgpq.schema
import pyarrow as pa

from bench.progress import Advance, no_progress
from bench.targets import schema
from bench.targets.target import Target, connected
from seed.generate import Generator
from seed.profiles import Profile
from seed.server_side import generate_on_server
from seed.validate import validate_batch

TABLE_ORDER = ("users", "conversations", "messages", "tasks")
JSON_COLUMNS = frozenset({"tags"})
_QUEUE_BATCHES = 2  # batches generated ahead of the COPY stream (bounds memory)
# A table's COPY data as it is encoded: (bytes, rows) chunks, None at the end, or the failure raised.
_Chunks = asyncio.Queue[tuple[bytes, int] | BaseException | None]
# Fills one (empty, bare) table on the connection given; returns the rows it loaded.
Loader = Callable[[asyncpg.Connection, str], Awaitable[int]]


@dataclass
class SeedResult:
    fingerprint: str
    skipped: bool
    row_counts: dict[str, int]
    seconds: float = 0.0
    # Making and loading the rows (server-side: its preparation and sampled validation too), then the
    # builds, ANALYZE and the foreign keys.
    load_seconds: float = 0.0

    @property
    def rows_per_second(self) -> float:
        """Rows per second of loading them into the schema: the COPYs, the deferred builds, ANALYZE."""
        return sum(self.row_counts.values()) / self.load_seconds if self.load_seconds else 0.0


def encoder_for(arrow_schema: pa.Schema) -> pgpq.ArrowToPostgresBinaryEncoder:
    """pgpq's encoder, with JSON text columns sent as jsonb. UUIDs travel as 16 raw bytes and
    enum labels as text: binary COPY hands the bytes to each column's own receive function."""
    encoders = {
        f.name: (
            pgpq.encoders.StringEncoderBuilder.new_with_output(f, pgpq.schema.Jsonb())
            if f.name in JSON_COLUMNS
            else pgpq.ArrowToPostgresBinaryEncoder.infer_encoder(f)
        )
        for f in arrow_schema
    }
    return pgpq.ArrowToPostgresBinaryEncoder.new_with_encoders(arrow_schema, encoders)


class _Encoded:
    """Validated, encoded COPY data of one table, produced off the event loop."""

    def __init__(self, table: str, batches: Iterator[pa.RecordBatch]) -> None:
        self.table = table
        self.batches = batches
        self.encoder: pgpq.ArrowToPostgresBinaryEncoder | None = None
        self.columns: list[str] = []

    def next_chunk(self) -> tuple[bytes, int] | None:
        """(COPY bytes, rows) for the next batch; the trailer once the batches are exhausted."""
        batch = next(self.batches, None)
        if batch is None:
            return (self.encoder.finish(), 0) if self.encoder else None
        validate_batch(self.table, batch)
        data = b""
        if self.encoder is None:
            self.encoder = encoder_for(batch.schema)
            self.columns = batch.schema.names
            data = self.encoder.write_header()
        return data + self.encoder.write_batch(batch), batch.num_rows


async def _prefetch(source: _Encoded, queue: _Chunks) -> None:
    """Fill the queue; a failure is queued too, so the COPY stream raises it instead of waiting."""
    while True:
        try:
            chunk = await asyncio.to_thread(source.next_chunk)
        except asyncio.CancelledError:
            raise  # stopped by its table: queued, it would wait for ever on a queue no one reads
        except BaseException as exc:  # noqa: BLE001 - re-raised by the consumer
            await queue.put(exc)
            return
        await queue.put(chunk)
        if chunk is None or chunk[1] == 0:
            return


class _SourceFailed(Exception):
    """Raised inside asyncpg's COPY loop so it aborts the COPY cleanly (CopyFail); the real error,
    possibly a KeyboardInterrupt, is raised by ``fill_tables`` once every table's load has stopped
    (raised in a table's own task, a KeyboardInterrupt would leave the event loop at once, before
    the other tables' connections are closed)."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(repr(error))
        self.error = error


async def _next(queue: _Chunks) -> tuple[bytes, int] | None:
    item = await queue.get()
    if isinstance(item, BaseException):
        raise _SourceFailed(item)
    return item


async def _copy_table(
    conn: asyncpg.Connection, table: str, batches: Iterator[pa.RecordBatch], advance: Advance, total: int
) -> int:
    source = _Encoded(table, batches)
    queue: _Chunks = asyncio.Queue(maxsize=_QUEUE_BATCHES)
    producer = asyncio.create_task(_prefetch(source, queue))
    done = 0

    async def stream(first: tuple[bytes, int]) -> AsyncIterator[bytes]:
        nonlocal done
        chunk: tuple[bytes, int] | None = first
        while chunk is not None:
            yield chunk[0]
            done += chunk[1]
            advance(f"seed {table}", done, total)
            if chunk[1] == 0:
                return
            chunk = await _next(queue)

    try:
        first = await _next(queue)  # the header carries the column list the COPY statement needs
        advance(f"seed {table}", 0, total)
        if first is not None:
            # COPY FREEZE writes the rows frozen and their pages all-visible, so the VACUUM after
            # the load has nothing to do and no first read dirties a page setting hint bits. It
            # needs the table emptied in the same transaction (the foreign keys come after the load).
            async with conn.transaction():
                await conn.execute(f"TRUNCATE {table}")
                await conn.copy_to_table(
                    table, source=stream(first), columns=source.columns, format="binary", freeze=True
                )
        await producer
    finally:
        producer.cancel()  # whatever stopped the COPY, or the wait for its first chunk, stops the batches
    return done


async def _run_each(target: Target, statements: list[str]) -> None:
    async with connected(target) as conn:
        for statement in statements:
            await conn.execute(statement)


async def fill_tables(target: Target, deferred: schema.Deferred, load: Loader | None = None) -> dict[str, int]:
    """Every table at once, each on a connection (one server process) of its own: ``load`` fills it
    (None: it is filled already), then it gets the secondary indexes the load deferred and a VACUUM
    (ANALYZE); the foreign keys last, once every table is done. Returns the rows each load made."""

    async def one(table: str) -> int:
        try:
            async with connected(target) as conn:
                rows = await load(conn, table) if load else 0
                for statement in [*deferred.indexes.get(table, []), f"VACUUM (ANALYZE) {table}"]:
                    await conn.execute(statement)
        except Exception:
            if (task := asyncio.current_task()) is not None and task.cancelling():
                # stopped (Ctrl-C, another table's failure): what failed on the way out is not the news
                raise asyncio.CancelledError from None
            raise
        return rows

    try:
        # A table that fails cancels the others, and waits until their connections are closed.
        async with asyncio.TaskGroup() as group:
            filled = [group.create_task(one(table)) for table in TABLE_ORDER]
    except BaseExceptionGroup as group:
        failed = group.exceptions[0]  # the failure itself, as one table's load would raise it
        raise (failed.error if isinstance(failed, _SourceFailed) else failed) from None
    await _run_each(target, deferred.foreign_keys)
    return {table: task.result() for table, task in zip(TABLE_ORDER, filled, strict=True)}


async def _load(target: Target, gen: Generator, deferred: schema.Deferred, advance: Advance) -> dict[str, int]:
    expected = gen.row_counts()
    # The generating threads' Python parts hold the GIL for up to the switch interval (5 ms by
    # default); the event loop must get it back sooner to keep the sockets full, or the server
    # idles between chunks.
    switch = sys.getswitchinterval()
    sys.setswitchinterval(0.0005)
    try:
        return await fill_tables(
            target,
            deferred,
            lambda conn, table: _copy_table(conn, table, getattr(gen, table)(), advance, expected[table]),
        )
    finally:
        sys.setswitchinterval(switch)


def seed_database(
    target: Target, profile: Profile, advance: Advance = no_progress, force_reload: bool = False
) -> SeedResult:
    """Make the target hold exactly ``profile``'s dataset in the models' tables as they are now,
    loading it only if it is not there yet."""
    fingerprint = profile.fingerprint()
    current = schema.current_dataset(target)
    if current and current.get("fingerprint") == fingerprint and not force_reload:
        return SeedResult(fingerprint, True, current["row_counts"])

    started = time.perf_counter()
    schema.recreate_schema(target)  # also forgets the old fingerprint before anything is loaded
    deferred = schema.defer_indexes_and_keys(target)
    loading = time.perf_counter()
    if profile.generator == "server":
        counts = generate_on_server(target, profile, advance)
        asyncio.run(fill_tables(target, deferred))
    else:
        counts = asyncio.run(_load(target, Generator(profile), deferred, advance))
    load_seconds = time.perf_counter() - loading
    with schema.connect(target) as conn:
        schema.set_meta(
            conn, "dataset", {"fingerprint": fingerprint, "profile": profile.params(), "row_counts": counts}
        )
    return SeedResult(fingerprint, False, counts, time.perf_counter() - started, load_seconds)
