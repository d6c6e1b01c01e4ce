"""Recommending for every user in bounded memory: the log grouped by user once, users in batches.

:func:`recommend_batches` yields, one batch of users at a time, exactly what :func:`mmrec.recommend`
returns for those users; :func:`write_recommendations` streams the batches into one Parquet (or CSV)
file, written atomically. What stays in memory is the grouped log (:class:`EventsByUser`: about
22 bytes per event plus the user ids, CSR arrays instead of a per-user dict) and one batch's working
set (its users' events, vectors, seen items and results) — not anything per user of the whole run::

    grouped = mmrec.EventsByUser.from_interactions(index, events)  # then `del events` frees the log
    mmrec.write_recommendations(mmrec.recommend_batches(index, grouped, k=20), "recs.parquet")
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mmrec.data.interactions import (
    DroppedEvents,
    EventWeights,
    Interactions,
    as_interactions,
    first_appearance,
    missing_value_error,
)
from mmrec.data.matrix import distinct_user_counts
from mmrec.data.validation import id_list, positive_int
from mmrec.errors import ConfigError
from mmrec.index import ServingIndex
from mmrec.ranking.options import RankingOptions, resolve_options
from mmrec.ranking.popularity import fallback_order
from mmrec.ranking.rerank import ExposureLedger
from mmrec.ranking.topk import check_model_options, check_serving_index, recommend_known
from mmrec.utils.io import atomic_path
from mmrec.utils.progress import progress

__all__ = ["EventsByUser", "recommend_batches", "write_recommendations"]

logger = logging.getLogger(__name__)

# Events per step when popularity is counted over the grouped log (bounds its temporaries to ~2 MB).
POPULARITY_CHUNK = 1 << 16


@dataclass(frozen=True)
class EventsByUser:
    """A behaviour log grouped by user once, as CSR arrays over one index's labels.

    User ``user_ids[i]``'s events are positions ``indptr[i]:indptr[i + 1]`` of the per-event arrays,
    in the log's order. Only events on items in the index are kept (the rest are reported in
    ``dropped``; a user whose items are all unknown keeps a row without events, so that
    :func:`mmrec.recommend` and the batches serve the same users); ``item_ids[labels]`` gives their
    catalog ids.

    Attributes
    ----------
    user_ids : ndarray, object, shape (n_users,)
        In order of first appearance (as :attr:`Interactions.users`).
    indptr : ndarray, int64, shape (n_users + 1,)
    labels : ndarray, int32, shape (n_events,)
        Index labels of the items.
    timestamps, values : ndarray, float64, shape (n_events,)
        NaN where absent.
    codes : ndarray, unsigned int, shape (n_events,)
        Event types as positions in ``event_names``.
    event_names : ndarray, object
    item_ids : ndarray, object
        The index's ids when grouped (labels are append-only, so they stay valid as items are added).
    """

    user_ids: np.ndarray
    indptr: np.ndarray
    labels: np.ndarray
    timestamps: np.ndarray
    values: np.ndarray
    codes: np.ndarray
    event_names: np.ndarray
    item_ids: np.ndarray
    dropped: DroppedEvents | None = None

    @classmethod
    def from_interactions(cls, index: ServingIndex, events: Interactions) -> EventsByUser:
        """Group ``events`` (one pass, vectorised); events on items not in ``index`` are dropped
        and reported, as :func:`mmrec.recommend` does."""
        # users numbered in order of first appearance in the whole log (a user whose every event
        # is dropped below keeps an empty row)
        all_codes, all_users = events.codes("user")
        first_seen, renumber = first_appearance(all_codes, len(all_users))
        user_ids = all_users[first_seen]
        known = events.restrict_to_items(index.item_ids)  # read-only views below: no copy of the log
        user_codes = renumber[known.codes("user")[0]]
        order = np.argsort(user_codes, kind="stable")
        indptr = np.zeros(len(user_ids) + 1, dtype=np.int64)
        np.cumsum(np.bincount(user_codes, minlength=len(user_ids)), out=indptr[1:])
        del user_codes
        item_codes, item_strings = known.codes("item")
        used = np.bincount(item_codes, minlength=len(item_strings)) > 0  # a filter leaves unused ones
        label_of = np.full(len(item_strings), -1, dtype=np.int32)
        label_of[used] = index.positions(item_strings[used].tolist())
        labels = label_of[item_codes][order]
        event_codes, event_names = known.codes("event")
        codes = event_codes.astype(np.min_scalar_type(max(len(event_names) - 1, 0)))[order]
        return cls(
            user_ids=np.asarray(user_ids, dtype=object), indptr=indptr, labels=labels,
            timestamps=known.timestamps[order], values=known.values[order], codes=codes,
            event_names=np.asarray(event_names, dtype=object), item_ids=index.ids, dropped=known.dropped,
        )

    def __len__(self) -> int:
        return len(self.user_ids)

    @property
    def n_events(self) -> int:
        return len(self.labels)

    @property
    def nbytes(self) -> int:
        """Bytes of the arrays (the user id strings themselves not counted)."""
        arrays = (self.user_ids, self.indptr, self.labels, self.timestamps, self.values, self.codes)
        return int(sum(a.nbytes for a in arrays))

    def rows_of(self, users: Sequence[str]) -> np.ndarray:
        """Row (int64) of each user id; ``-1`` for users not in the log."""
        lookup = pd.Index(self.user_ids, dtype=object)
        return lookup.get_indexer(pd.Index([str(u) for u in users], dtype=object)).astype(np.int64)

    def interactions(self, rows: np.ndarray) -> Interactions:
        """The events of the users at ``rows`` (``-1`` rows contribute none), as an
        :class:`Interactions` — the only per-event table a batch ever builds."""
        rows = np.asarray(rows, dtype=np.int64)
        rows = rows[rows >= 0]
        starts, lengths = self.indptr[rows], self.indptr[rows + 1] - self.indptr[rows]
        offsets = np.cumsum(lengths) - lengths
        take = np.arange(int(lengths.sum()), dtype=np.int64) + np.repeat(starts - offsets, lengths)
        return Interactions(pd.DataFrame({
            "user": pd.Series(np.repeat(self.user_ids[rows], lengths), dtype=object),
            "item": pd.Series(self.item_ids[self.labels[take]], dtype=object),
            "timestamp": self.timestamps[take],
            "event": pd.Series(self.event_names[self.codes[take]], dtype=object),
            "value": self.values[take],
        }))

    def popularity(self, n_labels: int) -> np.ndarray:
        """Distinct users per label (float64, length ``n_labels``), as
        :func:`mmrec.ranking.popularity.popularity` counts them; computed in steps of about
        ``POPULARITY_CHUNK`` events."""
        counts = np.zeros(n_labels, dtype=np.float64)
        if not self.n_events:
            return counts
        bounds = np.unique(np.searchsorted(self.indptr, np.arange(0, self.n_events, POPULARITY_CHUNK),
                                           side="right") - 1)
        for first, last in zip(bounds, [*bounds[1:], len(self)], strict=True):  # chunks of whole users
            lo, hi = self.indptr[first], self.indptr[last]
            rows = np.repeat(np.arange(last - first, dtype=np.int64), np.diff(self.indptr[first : last + 1]))
            counts += distinct_user_counts(rows, self.labels[lo:hi], n_labels)
        return counts
        bounds = np.unique(np.searchsorted(self.indptr, np.arange(0, self.n_events, POPULARITY_CHUNK),
                                           side="right") - 1)
        for first, last in zip(bounds, [*bounds[1:], len(self)], strict=True):
            lo, hi = self.indptr[first], self.indptr[last]
            rows = np.repeat(np.arange(last - first, dtype=np.int64), np.diff(self.indptr[first : last + 1]))
            pairs = np.unique(rows * n_labels + self.labels[lo:hi])
            counts += np.bincount(pairs % n_labels, minlength=n_labels)
        return counts

    def check_values(self, event_weights: EventWeights | None) -> None:
        """Explicit events (ratings) need a value: a :class:`SchemaError` naming the user and item."""
        explicit = np.isin(self.event_names, np.array((event_weights or EventWeights()).explicit, object))
        missing = np.flatnonzero(explicit[self.codes] & np.isnan(self.values))
        if missing.size:
            at = int(missing[0])
            user = self.user_ids[int(np.searchsorted(self.indptr, at, side="right")) - 1]
            raise missing_value_error(user, self.item_ids[self.labels[at]], self.event_names[self.codes[at]])


def recommend_batches(
    index: ServingIndex,
    events: EventsByUser | Interactions | pd.DataFrame,
    *,
    users: Sequence[str] | None = None,
    batch_size: int = 10_000,
    model: Any = None,
    options: RankingOptions | None = None,
    **overrides: Any,
) -> Iterator[pd.DataFrame]:
    """:func:`mmrec.recommend` for many users, ``batch_size`` users at a time.

    Each yielded frame (columns ``user, rank, item, score, source``) equals what
    :func:`mmrec.recommend` gives those users with the same ``model`` and options: the popularity
    fallback counts the whole log, seen items come from each user's own events. Users are taken in
    order (``users``, or every user of the log in order of first appearance). Pass an
    :class:`EventsByUser` to group a large log once and free the original table; memory then stays
    that of one batch whatever the number of users.

    ``options`` and the keyword ``overrides`` of its fields (``k=20``, ``where=...``) are those of
    :func:`mmrec.recommend` (see :class:`mmrec.RankingOptions`); the options are checked at the
    call, the batches computed as they are read.
    """
    check_serving_index(index, "recommend_batches")
    options = resolve_options(options, overrides, caller="recommend_batches")
    batch_size = positive_int(batch_size, name="batch_size")
    check_model_options(index, model, options, caller="recommend_batches")
    grouped = _grouped(index, events)
    if model is None:
        grouped.check_values(options.event_weights)
    if users is None:
        wanted, rows = grouped.user_ids, np.arange(len(grouped), dtype=np.int64)
    else:
        # a user listed twice is served once, at the first place (as recommend does)
        wanted = pd.unique(np.asarray(id_list(users, name="users"), dtype=object))
        rows = grouped.rows_of(wanted)
    allowed = index.mask(options.where) if options.where else None

    @functools.cache
    def popular() -> tuple[np.ndarray, np.ndarray]:
        pop = grouped.popularity(index.n_labels)
        return pop, fallback_order(index, pop, allowed)

    ledger = ExposureLedger()  # rerank="exposure": exposure counted over every batch of the call

    def batches() -> Iterator[pd.DataFrame]:
        starts = range(0, len(wanted), batch_size)
        for start in progress(starts, desc="recommend", total=len(starts)):
            stop = start + batch_size
            yield recommend_known(index, grouped.interactions(rows[start:stop]), users=wanted[start:stop],
                                  options=options, allowed=allowed, model=model, popular=popular,
                                  ledger=ledger)

    return batches()  # the checks above run at the call, the batches as they are read


def _grouped(index: ServingIndex, events: EventsByUser | Interactions | pd.DataFrame) -> EventsByUser:
    if isinstance(events, EventsByUser):
        return events
    return EventsByUser.from_interactions(index, as_interactions(events, caller="recommend_batches"))


def write_recommendations(batches: Iterable[pd.DataFrame], path: str | os.PathLike[str]) -> tuple[int, int]:
    """Stream recommendation frames (from :func:`recommend_batches`) into one ``.parquet`` (a row
    group per batch) or ``.csv`` file, atomically: a temporary file renamed over ``path`` once
    complete, removed on error. Returns ``(rows, users)`` written."""
    path = Path(path)
    if path.suffix.lower() not in (".parquet", ".csv"):
        raise ConfigError(f"{path}: recommendations are written as .parquet or .csv; rename the output.")
    rows = users = 0
    with atomic_path(path) as tmp, _writer(tmp, path.suffix.lower()) as write:
        for batch in batches:
            write(batch)
            rows, users = rows + len(batch), users + batch["user"].nunique()
    logger.info("wrote %d recommendations for %d users to %s", rows, users, path)
    return rows, users


@contextlib.contextmanager
def _writer(tmp: Path, suffix: str) -> Iterator[Any]:
    """A function appending one frame to ``tmp`` (Parquet with a fixed schema, or CSV)."""
    if suffix == ".csv":
        with open(tmp, "w", encoding="utf-8", newline="") as handle:
            first = [True]

            def write_csv(frame: pd.DataFrame) -> None:
                frame.to_csv(handle, index=False, header=first[0])
                first[0] = False

            yield write_csv
            if first[0]:  # no batch at all: still a readable file with the header
                pd.DataFrame(columns=["user", "rank", "item", "score", "source"]).to_csv(handle, index=False)
        return
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([("user", pa.string()), ("rank", pa.int64()), ("item", pa.string()),
                        ("score", pa.float64()), ("source", pa.string())])
    with pq.ParquetWriter(tmp, schema) as parquet:
        yield lambda frame: parquet.write_table(pa.Table.from_pandas(frame, schema=schema,
                                                                     preserve_index=False))
