"""The state behind ``mmrec serve``: a trained model, its index, the catalog and the online loop.

:class:`Service` answers in plain Python objects (the HTTP layer in :mod:`mmrec.serve.app` only
validates and serialises). **Concurrency**: the state (index, per-user online state) is guarded by
one lock, ``Service.lock``: FAISS ``add`` and the per-user state are not safe to mutate
concurrently. Writes run one at a time (a second lock) and hold the state only in slices: events
are committed to the store, then applied a few milliseconds at a time, and a read that queued meanwhile
goes before the next slice; new items are encoded outside the state lock and only added under it.
So a read waits for at most one slice of a write, not for the whole write. With a store
(:mod:`mmrec.serve.store`) the state is durable and shared by replicas.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mmrec.data.catalog import Catalog
from mmrec.data.interactions import Interactions
from mmrec.data.readers import read_user_attributes
from mmrec.data.validation import is_finite_number
from mmrec.encode.new_items import NewItemEncoder, append_items
from mmrec.errors import ConfigError, MmrecError, SchemaError
from mmrec.evaluation.registry import load_model
from mmrec.index import ItemIndex, build_index
from mmrec.models.two_tower import TwoTower
from mmrec.models.user_features import as_attribute_table
from mmrec.ranking.explain import Explainer
from mmrec.ranking.online import OnlineRecommender, check_event_numbers, live_options
from mmrec.ranking.options import RankingOptions
from mmrec.ranking.scored_online import ScoredOnline
from mmrec.serve.store import EVENT_COLUMNS, ChangeFeed, ServeStore, forget_user, open_store
from mmrec.utils.io import atomic_path
from mmrec.vectors.item_vectors import ItemVectors

__all__ = ["Service", "ServeConfig", "NotFound"]

logger = logging.getLogger(__name__)

APPLY_SLICE_SECONDS = 0.01  # a write holds the state about this long a slice, then lets reads in
# events in a write's first slice, the fewest (a tower run has a fixed cost of ~10-20 ms: slices of
# a few events would pay it per event again) and the most
APPLY_FIRST_SLICE, APPLY_MIN_SLICE, APPLY_MAX_SLICE = 128, 64, 4096
READER_GRACE_SECONDS = 0.05  # how long a write waits for queued reads before its next slice
MAX_ID_LENGTH = 512  # characters of a user or item id: the HTTP routes take no longer ones


class NotFound(SchemaError):
    """An id the service does not know (HTTP 404)."""


@dataclass(frozen=True)
class ServeConfig:
    """Knobs of the served loop (see :class:`mmrec.OnlineRecommender` for the first four)."""

    alpha: float = 0.5
    half_life: float = 3600.0
    new_user_events: int = 5
    diversify_by: str | None = None
    max_k: int = 100
    explain_top: int = 2
    category_column: str | None = None
    media_root: str | None = None  # where new items' media may live (default: the catalog's folder)
    upload_dir: str | None = None  # where uploaded media are stored (default: <state>/media)
    warm_users: bool = True  # at start, the tower runs over every known user's history in batches
                             # (~2,000 users/s on 2 cores), not at each one's first request


def _is_file(path: Path) -> bool:
    """``path.is_file()``, False where the OS refuses the name (too long, NUL byte)."""
    try:
        return path.is_file()
    except OSError:
        return False


def _opens_as(path: Path, role: str) -> bool:
    """Whether ``path`` is a file whose header reads as an image (Pillow) or audio (soundfile)."""
    if not _is_file(path):
        return False
    try:
        if role == "image":
            from PIL import Image

            with Image.open(path) as image:
                image.verify()
        else:
            import soundfile

            soundfile.info(str(path))
    except Exception:  # noqa: BLE001 - any decoder error means: not such a file
        return False
    return True


def _first(values: Sequence[str]) -> str | None:
    return values[0] if values else None


class Service:
    """Recommend, take feedback, explain, forget and add items — thread-safe (one lock).

    Parameters
    ----------
    model : TwoTower or any fitted recommender
        A :class:`mmrec.TwoTower` is served from an index of its item vectors with online user
        vectors (:class:`~mmrec.OnlineRecommender`); any other model of the Recommender contract
        (EASE, ItemKNN, LightGCN, BPR, popularity …) scores its items for each user's live history
        (:class:`~mmrec.ranking.scored_online.ScoredOnline`): feedback, forgetting and filters work the
        same, explanations and new items need a two-tower model.
    catalog : Catalog
        Titles, categories and media of the items; new items are added to it.
    items : ItemVectors, optional
        The run's item vectors (per-modality content + encoder presets): needed to explain by
        modality and to encode new items. Without them explanations name history items only and
        ``add_items`` is refused.
    index : ItemIndex, optional
        Built from ``model.encode_items(items)``; default: built here (exact up to 100k items).
    history : Interactions, optional
        Behaviour so far.
    users : DataFrame, optional
        User attributes (a ``user`` column or index): a two-tower fitted with attributes reads
        them (users with no event are served from them), and the popularity fallback ranks by
        the user's segments.
    """

    def __init__(self, model, catalog: Catalog, *, items: ItemVectors | None = None,
                 index: ItemIndex | None = None, history: Interactions | None = None,
                 config: ServeConfig | None = None, store: ServeStore | None = None,
                 events_file: str | Path | None = None, users: pd.DataFrame | None = None) -> None:
        self.config = config or ServeConfig()
        self.store, self.events_file = store, (Path(events_file) if events_file is not None else None)
        deferred, added_items = None, []
        self._feed = ChangeFeed()
        if store is not None:  # the store is the record: the history is what it holds
            self._feed.start(store.positions())
            stored, added_items = store.events(), store.items()
            self._feed.applied("events", stored["seq"])
            self._feed.applied("items", [seq for seq, _ in added_items])
            added = {str(record.get(catalog.schema.id)) for _, record in added_items}
            later = stored["item"].isin(added)  # events on items added over HTTP wait for them
            history = (Interactions.from_frame(stored.loc[~later, EVENT_COLUMNS]) if (~later).any()
                       else None)
            deferred = stored[later]
        self.model, self.catalog = model, catalog
        schema = catalog.schema
        self.items: ItemVectors | None = None
        self.index: ItemIndex | None = None
        self._new_items: NewItemEncoder | None = None
        if isinstance(model, TwoTower):
            if users is not None and model.user_schema_ is not None:
                model.set_user_attributes(users)
            learned = model.encode_items(items)  # content + learned vectors of every item
            self.items = learned if items is not None else None
            self.index = index if index is not None else build_index(learned, attributes=catalog)
            self.online: OnlineRecommender | ScoredOnline = OnlineRecommender(
                model, self.index, history=history, alpha=self.config.alpha,
                half_life=self.config.half_life, new_user_events=self.config.new_user_events,
                diversify_by=self.config.diversify_by,
                user_attributes=as_attribute_table(users, where="serve users") if users is not None else None)
            self._new_items = NewItemEncoder(items, catalog) if items is not None else None
            if self.config.warm_users:
                started = time.perf_counter()
                warmed = self.online.warm()
                logger.info("long-term vectors of %d known users computed in %.1f s", warmed,
                            time.perf_counter() - started)
        else:
            if items is not None or index is not None:
                raise ConfigError(f"{type(model).__name__} ranks its own items: serve it without "
                                  "item vectors or an index (those serve a two-tower model).")
            attributes = catalog.frame.set_index(schema.id)[[*schema.categorical, *schema.numeric]]
            attributes.index = attributes.index.map(str)
            self.online = ScoredOnline(model, history=history, attributes=attributes)
        self.lock = threading.RLock()  # the state: held by a read, or by one slice of a write
        self._writer = threading.RLock()  # writes, one at a time (commit order = apply order)
        self._readers_waiting = 0
        self._outside_s = 0.0  # seconds the current write slice spent with the state lock released
        self._waiting_lock = threading.Lock()
        self._explainer: Explainer | None = None
        self.title_column = _first(schema.text)
        self.category_column = self.config.category_column or _first(schema.categorical)
        self._cards: dict[str, dict[str, Any]] = {}
        self._media: dict[tuple[str, str], Path] = {}
        # each user's newest timestamp so far: computed here, not under the lock of a first write
        self._last_time: dict[str, float] = self.online.last_times()
        self._register(catalog)
        if added_items:
            self._add_items([record for _, record in added_items], persist=False)  # added before a restart
            self._replay(deferred)

    def _replay(self, events: pd.DataFrame) -> None:
        """Apply stored events (already committed) to the online state, a slice at a time."""
        known = self._contains(events["item"].tolist()) if len(events) else np.empty(0, bool)
        if not known.all():
            logger.warning("%d stored events name items this process does not hold; skipped",
                           int((~known).sum()))
        rows = [{"user": e.user, "item": e.item, "event": e.event,
                 "value": 1.0 if pd.isna(e.value) else e.value,
                 "timestamp": None if pd.isna(e.timestamp) else e.timestamp}
                for e in events[known].itertuples(index=False)]
        for e in rows:
            if e["timestamp"] is not None:
                self._last_time[e["user"]] = max(self._last_time.get(e["user"], -np.inf), e["timestamp"])
        self._apply(rows)

    def _apply(self, events: Sequence[Mapping[str, Any]]) -> None:
        """Fold committed events into the online state a slice at a time (one tower run per slice
        for the users it touched, with the state lock released while it runs); reads that queued
        meanwhile go before the next slice. Slices are sized from the last one's time holding the
        lock to hold it about ``APPLY_SLICE_SECONDS`` (never fewer than ``APPLY_MIN_SLICE``
        events)."""
        done, size = 0, APPLY_FIRST_SLICE
        while done < len(events):
            self._let_readers_in()
            self._outside_s = 0.0
            with self.lock:
                started = time.perf_counter()
                self.online.observe_many(events[done : done + size], unlocked=self._unlocked)
                held = time.perf_counter() - started - self._outside_s
            done += size
            paced = size * APPLY_SLICE_SECONDS / max(held, 1e-6)
            size = int(min(max(paced, APPLY_MIN_SLICE), 2 * size, APPLY_MAX_SLICE))

    @contextlib.contextmanager
    def _unlocked(self) -> Iterator[None]:
        """Inside a write's slice (the state lock held once): let reads in while the tower runs."""
        started = time.perf_counter()
        self.lock.release()
        try:
            yield
        finally:
            self.lock.acquire()
            self._outside_s += time.perf_counter() - started

    def _forget_here(self, user: str) -> int:
        """Drop the user's online state and timestamps in this process; returns events removed."""
        with self.lock:
            self._last_time.pop(user, None)
            return self.online.forget(user)

    def sync(self) -> None:
        """Apply what other processes sharing the store wrote since the last look (items, events,
        forgotten users): replicas behind a load balancer converge within ``SYNC_SECONDS``."""
        if self.store is None or not self._feed.due():
            return
        if not self._writer.acquire(blocking=False):  # a write is under way: look next time
            return
        try:
            self._apply_changes()
        finally:
            self._writer.release()

    def _apply_changes(self) -> None:
        """Under the writer lock: the store is read and new items encoded without holding the
        state; each change takes the state lock only to be applied."""
        found, latest = self.store.changes(self._feed.positions)
        records = [json.loads(record) for _, record in self._feed.new("items", found["items"])]
        if records:
            try:
                self._add_items(records, persist=False)
            except MmrecError as exc:  # e.g. its media are not reachable from this machine
                logger.warning("items added by another process cannot be added here: %s", exc)
        events = self._feed.new("events", found["events"])
        if events:
            self._replay(pd.DataFrame([row[1:] for row in events], columns=EVENT_COLUMNS))
        digests = {row[1] for row in self._feed.new("forgotten", found["forgotten"])}
        if digests:
            with self.lock:
                gone = [user for user in self.online.users() if self.store.digest(user) in digests]
            for user in gone:
                self._forget_here(user)
        self._feed.advance(latest)

    @classmethod
    def from_paths(cls, model: str | Path, catalog: str | Path, *, index: str | Path | None = None,
                   items: str | Path | None = None, events: str | Path | None = None,
                   config: ServeConfig | None = None, state: str | Path | None = None,
                   db: str | None = None, users: str | Path | None = None) -> Service:
        """Load a run: ``model`` is the ``mmrec train`` output folder (``model/``,
        ``item_vectors/``) or any saved model's folder; ``items`` defaults to the run's
        ``item_vectors`` (for a two-tower model). With ``state`` (a folder: SQLite) or ``db`` (a
        PostgreSQL URL) the served state is durable (:mod:`mmrec.serve.store`): ``events`` is
        imported into it once, and the history is what the store holds. ``users`` is a table of
        user attributes (see :func:`mmrec.data.readers.read_user_attributes`)."""
        model, run = Path(model), None
        if (model / "model").is_dir():
            run, model = model, model / "model"
        loaded = load_model(model)
        if (items is None and run is not None and (run / "item_vectors").is_dir()
                and isinstance(loaded, TwoTower)):
            items = run / "item_vectors"
        store = open_store(state, db=db) if state is not None or db is not None else None
        if state is not None and (config is None or config.upload_dir is None):
            config = dataclasses.replace(config or ServeConfig(), upload_dir=str(Path(state) / "media"))
        history = None
        if store is not None and events is not None:  # the store holds the history: read the file once
            imported = store.import_events(events, lambda path: Interactions.from_path(path).frame)
            logger.info("events file %s: %s", Path(events).name,
                        f"{imported} events imported" if imported else "imported before")
        elif events is not None:
            history = Interactions.from_path(events)
        return cls(loaded, Catalog.from_path(catalog),
                   items=ItemVectors.load(items) if items is not None else None,
                   index=ItemIndex.load(index) if index is not None else None,
                   history=history, config=config, store=store, events_file=events,
                   users=read_user_attributes(users) if users is not None else None)

    # ----------------------------------------------------------------------------- items
    def _register(self, catalog: Catalog) -> None:
        for role in ("image", "audio"):
            column = getattr(catalog.schema, role)
            if column is None:
                continue
            for item, path in zip(catalog.ids, catalog.media_paths(column), strict=True):
                if path is not None and _is_file(path):
                    self._media[(str(item), role)] = path
        ids = [str(item) for item in catalog.ids]
        titles = catalog.column(self.title_column) if self.title_column else ids
        categories = (catalog.column(self.category_column) if self.category_column
                      else [None] * len(ids))
        for item, title, category in zip(ids, titles, categories, strict=True):
            self._cards[item] = {
                "item": item,
                "title": str(title),
                "category": str(category) if pd.notna(category) else None,
                "image": f"/media/{item}/image" if (item, "image") in self._media else None,
                "audio": f"/media/{item}/audio" if (item, "audio") in self._media else None,
            }

    def card(self, item: str) -> dict[str, Any]:
        """What the page shows of an item: id, title, category and media URLs."""
        return dict(self._cards.get(item) or {"item": item, "title": item, "category": None,
                                               "image": None, "audio": None})

    def media_path(self, item: str, kind: str) -> Path:
        """The catalog's file for the item's image or audio (404 when it has none)."""
        path = self._media.get((item, kind))
        if path is None:
            raise NotFound(f"item {item!r} has no {kind} file.")
        return path

    def add_items(self, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Encode new catalog rows from their content with the run's encoders and add them to the
        index at once (no id embedding: cold items); with a store they are committed first (and
        re-encoded on a restart). Media must lie inside the media root and open as media."""
        self.sync()
        return self._add_items(records, persist=True)

    def _add_items(self, records: Sequence[Mapping[str, Any]], *, persist: bool) -> dict[str, Any]:
        if self._new_items is None or self.items is None or self.index is None:
            raise ConfigError("this service has no item vectors (--items) of a two-tower model: it "
                              "cannot encode new items.")
        schema = self.catalog.schema
        frame = pd.DataFrame([dict(r) for r in records])
        if schema.id not in frame.columns or frame[schema.id].isna().any():
            raise SchemaError(f"every new item needs its id in {schema.id!r}.")
        unknown = sorted(set(frame.columns) - set(schema.columns))
        if unknown:
            raise SchemaError(f"new items: unknown field(s) {unknown}; the catalog's fields are "
                              f"{schema.columns}.")
        frame = frame.reindex(columns=schema.columns)
        ids = frame[schema.id].astype(str)
        unfit = ids[(ids.str.len() == 0) | (ids.str.len() > MAX_ID_LENGTH)]
        if len(unfit):
            raise SchemaError(f"new item {unfit.index[0]}: {schema.id!r} {unfit.iloc[0][:40]!r}... has "
                              f"{len(unfit.iloc[0])} characters; give an id of 1 to {MAX_ID_LENGTH}.")
        with self._writer:  # reads go on while the items are encoded; they wait only for the add
            taken = ids[ids.duplicated() | self.index.contains(ids.tolist())]
            if len(taken):
                raise SchemaError(f"item {taken.iloc[0]!r} already exists (or is given twice).")
            new = Catalog.from_frame(frame, schema=schema, base_dir=self.catalog.base_dir)
            self._check_media_inside(new)
            content = self._new_items.encode(new)
            learned = self.model.encode_items(content)
            if persist and self.store is not None:
                self.store.add_items(records, schema.id)
            with self.lock:
                self.index.add(list(learned.ids), learned.fused, attributes=new.frame)
                self.items = append_items(self.items, learned)
                self._explainer = None
                self._register(new)
        return {"added": list(map(str, learned.ids)),
                "issues": [issue.__dict__ for issue in content.report.issues]}

    def store_upload(self, role: str, filename: str, data: bytes) -> str:
        """Keep an uploaded image or audio file (named by its SHA-256, written atomically) in the
        upload folder; returns its path for the item's record. Refused unless it opens as ``role``."""
        if self.config.upload_dir is None:
            raise ConfigError("this server stores no uploads: start it with --state or --upload-dir.")
        suffix = Path(filename or "").suffix.lower()
        if not suffix.isascii() or not suffix[1:].isalnum() or len(suffix) > 6:
            suffix = ""
        folder = Path(self.config.upload_dir)
        target = folder / f"{hashlib.sha256(data).hexdigest()}{suffix}"
        if not target.exists():
            with atomic_path(target) as tmp:
                tmp.write_bytes(data)
        if not _opens_as(target, role):
            target.unlink(missing_ok=True)
            raise SchemaError(f"the uploaded {role} {Path(filename or '').name[:60]!r} is not a readable "
                              f"{role} file.")
        return str(target.resolve())

    def _check_media_inside(self, new: Catalog) -> None:
        """New items' media must lie inside the media root or the upload folder (links resolved)
        and open as what they claim to be: only such files are ever served back by ``/media``."""
        roots = [Path(self.config.media_root or self.catalog.base_dir).resolve()]
        if self.config.upload_dir is not None:
            roots.append(Path(self.config.upload_dir).resolve())
        for role in ("image", "audio"):
            column = getattr(new.schema, role)
            if column is None:
                continue
            for item, path in zip(new.ids, new.media_paths(column), strict=True):
                if path is None:
                    continue
                resolved = path.resolve()
                if not any(resolved.is_relative_to(root) for root in roots):
                    raise SchemaError(f"item {item!r}: {column} {path.name!r} is outside the media folder; "
                                      "give a path inside it (--media-root).")
                if not _opens_as(resolved, role):
                    raise SchemaError(f"item {item!r}: {column} {path.name!r} is not a readable {role} file.")

    # ----------------------------------------------------------------------------- the loop
    def recommend(self, user: str, k: int | None = None, *, explain: bool = False,
                  options: RankingOptions | None = None, **overrides: Any) -> dict[str, Any]:
        """Top-``k`` cards for ``user`` now, with explanations when asked.

        ``options`` (a :class:`mmrec.RankingOptions`) and the keyword ``overrides`` of its fields
        say how to rank, as for :meth:`mmrec.OnlineRecommender.recommend` (``k`` given here replaces
        ``options.k``; at most ``config.max_k``; ``diversify`` re-ranks for variety, see
        :mod:`mmrec.ranking.rerank`)."""
        options = live_options(options, k, overrides, caller="Service.recommend")
        if options.k > self.config.max_k:
            raise SchemaError(f"k must be between 1 and {self.config.max_k}, got {options.k}.")
        self.sync()
        with self._reading():
            ids, scores, source = self.online.ranked(user, options=options)
            cards = [{**self.card(str(item)), "rank": rank, "score": float(score)}
                     for rank, (item, score) in enumerate(zip(ids, scores, strict=True), start=1)]
            if explain and source == "online":
                for card in cards:
                    card["explanation"] = self._explain(user, card["item"])
        return {"user": user, "source": source, "items": cards}

    def observe(self, events: Sequence[Mapping[str, Any]]) -> int:
        """Apply feedback events (``user, item, event, value, timestamp``) in order; all or none:
        every item is checked before any is applied."""
        self.sync()
        with self._writer:
            with self.lock:
                known = self._contains([e["item"] for e in events])
                if not known.all():
                    missing = events[int(np.flatnonzero(~known)[0])]["item"]
                    raise NotFound(f"item {missing!r} is not in the index (POST /items adds new items).")
                events = [self._timed(e) for e in events]
                for e in events:
                    check_event_numbers(str(e["user"]), str(e["item"]), e.get("event", "click"),
                                        e.get("value", 1.0), e.get("timestamp"))
            if self.store is not None:  # committed before it is applied (and before the 2xx)
                self.store.add_events(events)
            self._apply(events)
        return len(events)

    @contextlib.contextmanager
    def _reading(self) -> Iterator[None]:
        """Hold the state for a read; a write in progress yields to it at its next slice."""
        with self._waiting_lock:
            self._readers_waiting += 1
        try:
            self.lock.acquire()
        finally:
            with self._waiting_lock:
                self._readers_waiting -= 1
        try:
            yield
        finally:
            self.lock.release()

    def _let_readers_in(self) -> None:
        """Between two slices of a write: wait (briefly) until the reads that queued have run."""
        deadline = time.perf_counter() + READER_GRACE_SECONDS
        while self._readers_waiting and time.perf_counter() < deadline:
            time.sleep(0.0002)

    def _timed(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """The event with a timestamp: as given, else when it arrived — and after the user's last
        event (so it is their newest, whatever clock their earlier events were stamped with)."""
        user = str(event["user"])
        last = self._last_time.get(user, -np.inf)
        stamp = event.get("timestamp")
        if stamp is None:
            stamp = max(time.time(), last + 1.0)
        if is_finite_number(stamp):  # anything else is refused by the number check that follows
            self._last_time[user] = max(last, float(stamp))
        return {**event, "timestamp": stamp}

    def history(self, user: str, n: int = 10) -> list[dict[str, Any]]:
        """The user's ``n`` most recent events, newest first, as cards with the event."""
        self.sync()
        with self._reading():
            frame = self.online.events_of(user).frame
        frame = frame.sort_values("timestamp", kind="stable").tail(n).iloc[::-1]
        return [{**self.card(str(r.item)), "event": str(r.event), "value": float(r.value),
                 "timestamp": float(r.timestamp)} for r in frame.itertuples(index=False)]

    def _contains(self, item_ids: Sequence[str]) -> np.ndarray:
        """Per id, whether the served items hold it."""
        return (self.index.contains(item_ids) if self.index is not None
                else self.online.contains(item_ids))

    def _explain(self, user: str, item: str) -> dict[str, Any]:
        if not isinstance(self.model, TwoTower):
            raise ConfigError(f"explanations need a two-tower model; this service serves "
                              f"{type(self.model).__name__}.")
        if self._explainer is None:
            self._explainer = Explainer(self.model, self.items)
        history = pd.unique(self.online.events_of(user).frame["item"].to_numpy(dtype=object))
        why = self._explainer.explain(user, item, history, self.config.explain_top)
        return {"modalities": {m: round(s, 4) for m, s in why.modalities.items()},
                "because": [{**self.card(i), "share": round(s, 4), "cosine": round(c, 4)}
                            for i, s, c in why.because]}

    def explain(self, user: str, item: str) -> dict[str, Any]:
        """Modality shares and driving history items of ``item`` for ``user``."""
        self.sync()
        with self._reading():
            if not self._contains([item])[0]:
                raise NotFound(f"item {item!r} is not in the index.")
            return {"user": user, "item": item, **self._explain(user, item)}

    def forget(self, user: str) -> int:
        """Remove the user's events and state — with a store, also their rows there (only a salted
        hash stays, so a re-import cannot bring them back) and their rows of the events file the
        server was started with; returns how many events went."""
        self.sync()
        with self._writer:  # the store and the events file are rewritten while reads go on
            with self.lock:
                if user not in self.online.users():
                    raise NotFound(f"user {user!r} is unknown.")
            if self.store is not None:
                forget_user(self.store, user, events_file=self.events_file)
            return self._forget_here(user)

    def users(self, limit: int = 50) -> list[str]:
        """Up to ``limit`` known users, the most active first."""
        self.sync()
        with self._reading():
            return self.online.most_active(limit)

    def health(self) -> dict[str, Any]:
        """Liveness and sizes."""
        with self._reading():
            index = self.index
            return {"status": "ok", "model": type(self.model).__name__,
                    "items": len(index) if index is not None else len(self.online.item_ids),
                    "users": len(self.online.users()),
                    "index": index.spec if index is not None else None,
                    "dim": index.dim if index is not None else None,
                    "explain_modalities": self.items is not None}
