"""The served state in a database: every acknowledged event, every item added over HTTP, the
imports done and the users forgotten. SQLite (stdlib ``sqlite3``, WAL) in a folder by default;
PostgreSQL (``psycopg``) through the same statements, so several replicas can share one state.

An event is committed before the server answers 2xx; a restart (also after ``kill -9``) rebuilds
the online state from the store. Forgotten users leave only a salted hash behind
(:meth:`ServeStore.forget`), so re-importing an old events file cannot bring them back.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from mmrec.errors import ConfigError, MissingDependencyError
from mmrec.utils.io import atomic_path, sha256_file

__all__ = ["ServeStore", "ChangeFeed", "open_store", "forget_user", "EVENT_COLUMNS", "CHANGE_WINDOW"]

EVENT_COLUMNS = ["user", "item", "event", "value", "timestamp"]
SQLITE_FILE = "state.sqlite3"
INSERT_EVENT = 'INSERT INTO events ("user", item, event, value, timestamp, origin) VALUES (?, ?, ?, ?, ?, ?)'
CHANGE_WINDOW = 10_000  # rows re-read by every change poll (late commits of concurrent writers)
CHANGE_TABLES = ("events", "items", "forgotten")
SYNC_SECONDS = 0.05  # a process looks for other processes' writes at most this often

# One schema for both databases; only the row id and the placeholder differ.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (seq {serial} PRIMARY KEY, "user" TEXT NOT NULL, item TEXT NOT NULL,
    event TEXT NOT NULL, value DOUBLE PRECISION, timestamp DOUBLE PRECISION, origin TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_by_user ON events ("user");
CREATE TABLE IF NOT EXISTS items (seq {serial} PRIMARY KEY, item TEXT UNIQUE NOT NULL, record TEXT NOT NULL,
    origin TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS forgotten (seq {serial} PRIMARY KEY, digest TEXT UNIQUE NOT NULL,
    origin TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS imports (digest TEXT PRIMARY KEY, source TEXT NOT NULL, rows BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS settings (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass(frozen=True)
class _Dialect:
    placeholder: str
    serial: str  # an auto-numbered row id


SQLITE = _Dialect("?", "INTEGER")
POSTGRES = _Dialect("%s", "BIGSERIAL")


class ServeStore:
    """Events, added items, imports and forgotten users of one served deployment (thread-safe: one
    connection, one lock; writes are committed before they return)."""

    def __init__(self, connection: Any, dialect: _Dialect) -> None:
        self._connection, self._dialect = connection, dialect
        self.origin = secrets.token_hex(8)  # this process: its own writes are not fed back to it
        self._lock = threading.Lock()
        with self._transaction() as cursor:
            for statement in _SCHEMA.format(serial=dialect.serial).split(";"):
                if statement.strip():
                    cursor.execute(statement)
        self._salt = self._setting("salt") or self._set_setting("salt", secrets.token_hex(16))

    # ----------------------------------------------------------------------------- plumbing
    def _sql(self, statement: str) -> str:
        return statement.replace("?", self._dialect.placeholder)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Any]:
        """A cursor whose statements are committed together when the block ends (rolled back if it
        raises); one at a time per store."""
        with self._lock:
            cursor = self._connection.cursor()
            try:
                yield cursor
                self._connection.commit()
            except BaseException:
                self._connection.rollback()
                raise

    def _run(self, statement: str, rows: Sequence[Sequence[Any]] | None = None,
             params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """One statement (``rows``: executed for each) in its own transaction; the rows it returns."""
        with self._transaction() as cursor:
            if rows is not None:
                cursor.executemany(self._sql(statement), rows)
                return []
            cursor.execute(self._sql(statement), tuple(params))
            return cursor.fetchall() if cursor.description else []

    def _setting(self, name: str) -> str | None:
        found = self._run("SELECT value FROM settings WHERE name = ?", params=(name,))
        return str(found[0][0]) if found else None

    def _set_setting(self, name: str, value: str) -> str:
        self._run("INSERT INTO settings (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
                  params=(name, value))
        return str(self._setting(name))

    def close(self) -> None:
        with self._lock:
            self._connection.close()

    # ----------------------------------------------------------------------------- events
    def add_events(self, events: Sequence[Mapping[str, Any]]) -> None:
        """Commit events (all or none)."""
        self._run(INSERT_EVENT, rows=[self._event_row(e["user"], e["item"], e.get("event", "click"),
                                                     e.get("value", 1.0), e.get("timestamp"))
                                      for e in events])

    def _event_row(self, user: Any, item: Any, event: Any, value: Any, timestamp: Any) -> tuple[Any, ...]:
        """The parameters of ``INSERT_EVENT`` (a missing value or timestamp stored as NULL)."""
        return (str(user), str(item), str(event), None if pd.isna(value) else float(value),
                None if pd.isna(timestamp) else float(timestamp), self.origin)

    def events(self) -> pd.DataFrame:
        """Every stored event in the order it was acknowledged, with its row number ``seq``."""
        rows = self._run('SELECT "user", item, event, value, timestamp, seq FROM events ORDER BY seq')
        frame = pd.DataFrame(rows, columns=[*EVENT_COLUMNS, "seq"])
        return frame.astype({"value": "float64", "timestamp": "float64", "seq": "int64"})  # NULL → NaN

    def event_count(self) -> int:
        return int(self._run("SELECT COUNT(*) FROM events")[0][0])

    # ----------------------------------------------------------------------------- items
    def add_items(self, records: Sequence[Mapping[str, Any]], id_field: str) -> None:
        """Commit new catalog rows (as given; replayed through the encoders on restart)."""
        self._run("INSERT INTO items (item, record, origin) VALUES (?, ?, ?)",
                  rows=[(str(r[id_field]), json.dumps(dict(r), default=str), self.origin) for r in records])

    def items(self) -> list[tuple[int, dict[str, Any]]]:
        """Every added item as ``(seq, record)``, oldest first."""
        return [(int(seq), json.loads(record))
                for seq, record in self._run("SELECT seq, record FROM items ORDER BY seq")]

    # ----------------------------------------------------------------------------- forgetting
    def digest(self, user: str) -> str:
        """The salted hash kept of a forgotten user id (the id itself is kept nowhere)."""
        return hashlib.sha256(f"{self._salt}:{user}".encode()).hexdigest()

    def forget(self, user: str) -> int:
        """Delete the user's events and remember only their salted hash; returns rows deleted."""
        with self._transaction() as cursor:
            cursor.execute(self._sql('DELETE FROM events WHERE "user" = ?'), (user,))
            removed = int(cursor.rowcount or 0)
            cursor.execute(self._sql("INSERT INTO forgotten (digest, origin) VALUES (?, ?) "
                                     "ON CONFLICT (digest) DO NOTHING"), (self.digest(user), self.origin))
        if self._dialect is SQLITE:  # the deleted rows' bytes leave the WAL for the zeroed pages
            self._run("PRAGMA wal_checkpoint(TRUNCATE)")
        return removed

    def forgotten(self, users: Iterable[str]) -> set[str]:
        """Which of ``users`` were forgotten."""
        digests = {row[0] for row in self._run("SELECT digest FROM forgotten")}
        return {user for user in set(users) if self.digest(user) in digests}

    # ----------------------------------------------------------------------------- other replicas
    def changes(self, since: Mapping[str, int]) -> tuple[dict[str, list[tuple[Any, ...]]], dict[str, int]]:
        """What other processes wrote after the row numbers ``since`` (per table: ``events``,
        ``items``, ``forgotten``), oldest first, and the new row numbers. The last ``CHANGE_WINDOW``
        rows are read again, so a row whose transaction committed after a later-numbered one is not
        missed; callers skip the row numbers they applied already."""
        queries = {
            "events": 'SELECT seq, "user", item, event, value, timestamp FROM events',
            "items": "SELECT seq, record FROM items",
            "forgotten": "SELECT seq, digest FROM forgotten",
        }
        found = {table: self._run(f"{select} WHERE seq > ? AND origin <> ? ORDER BY seq",
                                  params=(max(0, int(since.get(table, 0)) - CHANGE_WINDOW), self.origin))
                 for table, select in queries.items()}
        top = self.positions()
        return found, {table: max(int(since.get(table, 0)), top[table]) for table in CHANGE_TABLES}

    def positions(self) -> dict[str, int]:
        """The newest row number of each change table (where a process starting now is)."""
        return {table: int(self._run(f"SELECT MAX(seq) FROM {table}")[0][0] or 0) for table in CHANGE_TABLES}

    # ----------------------------------------------------------------------------- imports
    def import_events(self, path: str | os.PathLike[str], read: Callable[[Path], pd.DataFrame]) -> int:
        """Import an events file once (by its path, and by any content it ever had, wherever it
        lies): ``read(path)`` gives its events (columns ``EVENT_COLUMNS``) and is called only when
        the file is new; rows of forgotten users are dropped. Returns the rows imported (0 when it
        was imported before)."""
        path = Path(path).resolve()
        digest = sha256_file(path)
        known = self._run("SELECT source FROM imports WHERE source = ? OR digest = ?",
                          params=(str(path), digest))
        if known:
            return 0
        frame = read(path)
        gone = self.forgotten(frame["user"].astype(str).unique())
        kept = frame[~frame["user"].astype(str).isin(gone)]
        with self._transaction() as cursor:
            cursor.executemany(self._sql(INSERT_EVENT),
                               [self._event_row(r.user, r.item, r.event, r.value, r.timestamp)
                                for r in kept.itertuples(index=False)])
            cursor.execute(self._sql("INSERT INTO imports (digest, source, rows) VALUES (?, ?, ?)"),
                           (digest, str(path), len(kept)))
        return len(kept)

    def rewrite_import(self, path: str | os.PathLike[str], drop_user: str) -> int:
        """Remove ``drop_user``'s rows from an imported events file (written atomically, every other
        row as it was) and record its new content, so the shorter file is not taken for a new one.
        Returns the rows removed."""
        path = Path(path).resolve()
        removed = _drop_user_rows(path, drop_user)
        self._run("INSERT INTO imports (digest, source, rows) VALUES (?, ?, 0) "
                  "ON CONFLICT (digest) DO NOTHING",
                  params=(sha256_file(path), str(path)))  # every content it had stays known
        return removed


def forget_user(store: ServeStore, user: str, *, events_file: str | os.PathLike[str] | None = None
                ) -> tuple[int, int]:
    """Forget ``user`` for good in a served deployment's state (also while no server runs): their
    rows in the store go (a salted hash stays, so a re-import skips them) and, with
    ``events_file``, their rows of that file (rewritten atomically). Returns ``(store rows, file
    rows)`` removed. A running server applies it to its online state at its next request."""
    removed = store.forget(user)
    return removed, (store.rewrite_import(events_file, user) if events_file is not None else 0)


STREAM_ROWS = 200_000  # rows of an events file held at once while a forget rewrites it


def _drop_user_rows(path: Path, user: str) -> int:
    """Rewrite an events file without ``user``'s rows, streamed (:data:`STREAM_ROWS` rows held at
    a time, whatever the file's size): CSV/TSV as text cells, JSON Lines line by line, Parquet by
    record batches; the file is first scanned the same way and left untouched when the user has
    no row in it. Returns how many rows went."""
    suffix = path.suffix.lower()
    rewrite = _REWRITERS.get(suffix)
    if rewrite is None:
        raise ConfigError(f"{path.name}: cannot remove a forgotten user's rows from a {suffix} file; "
                          "use CSV, TSV, JSON Lines or Parquet for --events.")
    removed = rewrite(path, user, None)
    if removed:
        with atomic_path(path) as tmp:
            rewrite(path, user, tmp)
    return removed


def _jsonl_rows(path: Path, user: str, out: Path | None) -> int:
    removed, column = 0, None
    keeping = open(out, "w", encoding="utf-8") if out is not None else contextlib.nullcontext()
    with open(path, encoding="utf-8") as lines, keeping as kept:
        for line in lines:
            record = json.loads(line) if line.strip() else None
            if record is not None and column is None:
                column = _user_column(list(record))
            if record is not None and str(record.get(column)) == user:
                removed += 1
            elif kept is not None:
                kept.write(line)
    return removed


def _csv_rows(path: Path, user: str, out: Path | None) -> int:
    sep = "," if path.suffix.lower() == ".csv" else "\t"
    removed, header = 0, True
    for chunk in pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, chunksize=STREAM_ROWS):
        mine = chunk[_user_column(chunk.columns)] == user
        removed += int(mine.sum())
        if out is not None:
            chunk[~mine].to_csv(out, sep=sep, index=False, header=header, mode="w" if header else "a")
        header = False
    return removed


def _parquet_rows(path: Path, user: str, out: Path | None) -> int:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    source = pq.ParquetFile(path)
    column = _user_column(source.schema_arrow.names)
    removed = 0
    writer = pq.ParquetWriter(out, source.schema_arrow) if out is not None else None
    try:
        for batch in source.iter_batches(batch_size=STREAM_ROWS):
            mine = pc.equal(pc.cast(batch.column(column), pa.string()), user).fill_null(False)
            removed += int(pc.sum(mine).as_py() or 0)
            if writer is not None:
                writer.write_table(pa.Table.from_batches([batch.filter(pc.invert(mine))],
                                                         schema=source.schema_arrow))
    finally:
        if writer is not None:
            writer.close()
    return removed


_REWRITERS = {".jsonl": _jsonl_rows, ".ndjson": _jsonl_rows, ".csv": _csv_rows, ".tsv": _csv_rows,
              ".tab": _csv_rows, ".parquet": _parquet_rows, ".pq": _parquet_rows}


def _user_column(columns: Iterable[str]) -> str:
    """The user column among an events file's columns, named as ``Interactions`` reads it."""
    from mmrec.data.interactions import InteractionSchema

    return InteractionSchema.infer(pd.DataFrame(columns=list(columns))).user


class ChangeFeed:
    """Which stored rows this process has applied, per change table (``events``, ``items``,
    ``forgotten``), and when to look again (every ``SYNC_SECONDS`` at most)."""

    def __init__(self) -> None:
        self.positions: dict[str, int] = {}
        self._applied: dict[str, set[int]] = {table: set() for table in CHANGE_TABLES}
        self._next_look = 0.0

    def start(self, positions: Mapping[str, int]) -> None:
        """Where the store was just before this process read it."""
        self.positions = dict(positions)

    def applied(self, table: str, seqs: Iterable[int]) -> None:
        """Rows applied already (those read at start-up)."""
        floor = self.positions.get(table, 0) - CHANGE_WINDOW
        self._applied[table].update(int(seq) for seq in seqs if int(seq) > floor)

    def due(self) -> bool:
        now = time.monotonic()
        if now < self._next_look:
            return False
        self._next_look = now + SYNC_SECONDS
        return True

    def new(self, table: str, rows: Sequence[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """The rows not applied yet (now marked applied)."""
        fresh = [row for row in rows if int(row[0]) not in self._applied[table]]
        self._applied[table].update(int(row[0]) for row in fresh)
        return fresh

    def advance(self, latest: Mapping[str, int]) -> None:
        self.positions = dict(latest)
        for table, seqs in self._applied.items():
            floor = self.positions.get(table, 0) - CHANGE_WINDOW
            self._applied[table] = {seq for seq in seqs if seq > floor}


def open_store(state: str | os.PathLike[str] | None = None, *, db: str | None = None) -> ServeStore:
    """A store in the folder ``state`` (SQLite, WAL) or at the PostgreSQL URL ``db``."""
    if db is not None:
        if not db.startswith(("postgresql://", "postgres://")):
            raise ConfigError(f"--db expects a postgresql:// URL, got {db.split(':', 1)[0]}:…")
        try:
            import psycopg
        except ImportError as exc:
            raise MissingDependencyError("a PostgreSQL store needs psycopg: pip install 'mmrec[postgres]'"
                                         ) from exc
        try:
            connection = psycopg.connect(db)
        except psycopg.Error as exc:
            raise ConfigError(f"cannot connect to the PostgreSQL store ({type(exc).__name__}).") from None
        return ServeStore(connection, POSTGRES)
    if state is None:
        raise ConfigError("a store needs a --state folder or a --db URL.")
    folder = Path(state)
    folder.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(folder / SQLITE_FILE, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")  # committed = on disk, also after kill -9
    connection.execute("PRAGMA secure_delete=ON")  # deleted rows are overwritten, not left in free pages
    return ServeStore(connection, SQLITE)
