"""Behaviour logs as ordered per-user sequences, and padded tensor batches of them."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from mmrec.data.interactions import EventWeights, Interactions, first_appearance
from mmrec.data.splits import chronological_rows
from mmrec.data.validation import id_list

__all__ = ["Histories", "SequenceBatch", "EventVocabulary", "RATING_SCALE", "first_fit_rows"]

MAX_HOURS = 1e9  # hours since an event, at most (about 114,000 years)

# Ratings are fed to the towers as (value - centre) / RATING_SCALE.
RATING_SCALE = 2.0


@dataclass(frozen=True)
class EventVocabulary:
    """Event types known to a model, as dense indices (0 is padding, 1 is an unseen type)."""

    names: tuple[str, ...]

    def indices(self, events: np.ndarray) -> np.ndarray:
        lookup = {name: i + 2 for i, name in enumerate(self.names)}
        return np.fromiter((lookup.get(e, 1) for e in events), dtype=np.int64, count=len(events))

    def __len__(self) -> int:
        return len(self.names) + 2


@dataclass
class SequenceBatch:
    """Left-padded histories: position ``L-1`` is each user's latest event.

    ``items`` holds item positions + 1 (0 = padding), ``events`` event-type indices, ``values`` the
    scaled explicit value (0 for implicit events), ``gaps`` log-seconds since the previous event,
    ``hours`` hours before the latest event (for time windows), ``weights`` the event's weight as
    a training positive, ``rated`` 1 for explicit events (their value is a rating).


    A *packed* batch (``segments`` given) holds several histories per row, back to back: position
    ``t`` belongs to history ``segments[b, t] - 1`` (0: padding), whose user is ``users[that]``; each
    history is laid out as it would be alone (gaps and hours from its own events), and towers that
    read ``segments`` keep attention, pooling and positions inside each history.
    """

    items: torch.Tensor     # (B, L) int64
    events: torch.Tensor    # (B, L) int64
    values: torch.Tensor    # (B, L) float32
    gaps: torch.Tensor      # (B, L) float32
    hours: torch.Tensor     # (B, L) float32
    weights: torch.Tensor   # (B, L) float32
    rated: torch.Tensor     # (B, L) float32
    users: torch.Tensor | None = None  # (B,) int64: each row's user (packed: (S,), each history's)
    segments: torch.Tensor | None = None  # (B, L) int64: packed batches only, 1 + the position's history

    @property
    def mask(self) -> torch.Tensor:
        return self.items > 0

    def owners(self) -> torch.Tensor:
        """``(B, L)`` index into ``users`` of each position's history (the row, unless packed)."""
        if self.segments is not None:
            return (self.segments - 1).clamp_min(0)
        rows = torch.arange(self.items.shape[0], device=self.items.device)
        return rows[:, None].expand_as(self.items)

    def to(self, device: torch.device) -> SequenceBatch:
        users, segments = (None if t is None else t.to(device, non_blocking=True)
                           for t in (self.users, self.segments))
        return SequenceBatch(*(getattr(self, f).to(device, non_blocking=True) for f in _FIELDS),
                             users=users, segments=segments)

    def shifted(self) -> tuple[SequenceBatch, SequenceBatch]:
        """``(inputs, targets)``: the targets of position ``t`` are the events at ``t + 1``. In a
        packed batch a history's last event predicts nothing (the next one is another history's):
        among the inputs it is padding."""
        head = [getattr(self, f)[:, :-1] for f in _FIELDS]
        tail = SequenceBatch(*(getattr(self, f)[:, 1:] for f in _FIELDS), users=self.users,
                             segments=None if self.segments is None else self.segments[:, 1:])
        if self.segments is None:
            return SequenceBatch(*head, users=self.users), tail
        continues = self.segments[:, 1:] == self.segments[:, :-1]
        head = [field * continues.to(field.dtype) for field in head]
        segments = self.segments[:, :-1] * continues.to(self.segments.dtype)
        return SequenceBatch(*head, users=self.users, segments=segments), tail

    def renumbered(self, rows: torch.Tensor) -> SequenceBatch:
        """The batch with its items as positions (+ 1) in the sorted table ``rows`` they all belong
        to: histories read from a compact table of those rows' vectors, not a catalog-sized one."""
        local = torch.searchsorted(rows, (self.items - 1).clamp_min(0)) + 1
        return dataclasses.replace(self, items=torch.where(self.mask, local, 0))


_FIELDS = ("items", "events", "values", "gaps", "hours", "weights", "rated")


def first_fit_rows(sizes: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``width`` columns for pieces of ``sizes`` (each <= ``width``), first fit by
    decreasing size: each piece's row and the column its piece ends before, pieces placed from
    the row's right end leftwards (the longest piece of a row rightmost)."""
    row_of = np.zeros(len(sizes), np.int64)
    end_of = np.zeros(len(sizes), np.int64)
    free: list[int] = []  # the column each row's next piece ends before
    for piece in np.argsort(-sizes, kind="stable").tolist():
        size = int(sizes[piece])
        row = next((r for r, left in enumerate(free) if left >= size), len(free))
        if row == len(free):
            free.append(width)
        row_of[piece], end_of[piece] = row, free[row]
        free[row] -= size
    return row_of, end_of


@dataclass
class Histories:
    """Every user's events in time order, stored flat with ``offsets`` (CSR layout).

    ``item_idx`` are dense positions in the model's item table; the events of ``user_ids[u]`` are
    rows ``offsets[u]:offsets[u+1]``.
    """

    user_ids: np.ndarray
    offsets: np.ndarray
    item_idx: np.ndarray
    event_idx: np.ndarray
    values: np.ndarray
    times: np.ndarray
    weights: np.ndarray
    rated: np.ndarray

    @classmethod
    def from_interactions(
        cls,
        events: Interactions,
        item_index: pd.Index,
        vocabulary: EventVocabulary,
        *,
        event_weights: EventWeights,
        users: Sequence[str] | None = None,
    ) -> Histories:
        """Order each user's events by time; events on items outside ``item_index`` are dropped
        (and logged by :meth:`Interactions.restrict_to_items`). ``users`` fixes the row order
        (users without events get empty histories)."""
        events = events.restrict_to_items(item_index)
        events.require_values(event_weights)
        user_codes, user_strings = events.codes("user")
        order = chronological_rows(user_codes, events.timestamps)
        user_codes = user_codes[order]
        event_codes, event_names = events.codes("event")
        event_names = pd.Categorical.from_codes(event_codes[order], pd.Index(event_names, dtype=object))
        raw_values = events.values[order]
        weights = event_weights.positive(event_names, raw_values)
        explicit = event_weights.is_explicit(event_names)
        values = np.where(explicit, (raw_values - event_weights.rating_center) / RATING_SCALE, 0.0)
        if users is not None:  # a user asked for twice: one row
            user_ids = pd.unique(np.asarray(id_list(users, name="users"), dtype=object))
            row_of_code = pd.Index(user_ids, dtype=object).get_indexer(user_strings)
        else:  # in order of first (chronological) appearance
            seen, row_of_code = first_appearance(user_codes, len(user_strings))
            user_ids = user_strings[seen]
        user_row = row_of_code[user_codes]
        keep = user_row >= 0
        regroup = np.flatnonzero(keep)[np.argsort(user_row[keep], kind="stable")]
        counts = np.bincount(user_row[keep], minlength=len(user_ids))
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        rows = order[regroup]  # positions in the log
        item_codes, item_strings = events.codes("item")
        return cls(
            user_ids=np.asarray(user_ids, dtype=object),
            offsets=offsets,
            item_idx=item_index.get_indexer(item_strings).astype(np.int64)[item_codes[rows]],
            event_idx=vocabulary.indices(np.asarray(event_names.categories, dtype=object))[
                event_names.codes[regroup]],
            values=values[regroup].astype(np.float32),
            times=np.nan_to_num(events.timestamps[rows], nan=0.0),
            weights=weights[regroup].astype(np.float32),
            rated=explicit[regroup],
        )

    def __len__(self) -> int:
        return len(self.user_ids)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def windows(self, max_len: int) -> np.ndarray:
        """``(start, stop)`` event rows of training windows: each history cut from its end into
        pieces of ``max_len + 1`` events overlapping by one, so every event but a user's first is
        a target exactly once."""
        spans = []
        for start, stop in zip(self.offsets[:-1].tolist(), self.offsets[1:].tolist(), strict=True):
            end = stop
            while end - start >= 2:
                spans.append((max(start, end - max_len - 1), end))
                end -= max_len
        return np.asarray(spans, dtype=np.int64).reshape(-1, 2)

    def batch(self, spans: np.ndarray, length: int, users: np.ndarray | None = None) -> SequenceBatch:
        """Left-padded tensors for event rows ``spans`` (``(start, stop)`` pairs), ``length`` wide;
        ``users`` are the spans' user rows (default: found from the offsets, for non-empty spans)."""
        n = len(spans)
        return self._laid_out(spans, np.arange(n), np.full(n, length), (n, length), users)

    def packed_batch(self, spans: np.ndarray, length: int) -> SequenceBatch:
        """The windows ``spans`` (each at most ``length`` events) packed into as few rows of
        ``length`` columns as first-fit by decreasing length gives, back to back from each row's
        right end (``segments`` says which window each position belongs to)."""
        sizes = np.minimum(spans[:, 1] - spans[:, 0], length)
        rows, ends = first_fit_rows(sizes, length)
        n_rows = int(rows.max()) + 1 if len(rows) else 0
        return self._laid_out(spans, rows, ends, (n_rows, length), None, segments=True)

    def _laid_out(self, spans: np.ndarray, rows: np.ndarray, ends: np.ndarray, shape: tuple[int, int],
                  users: np.ndarray | None, *, segments: bool = False) -> SequenceBatch:
        """Span ``i``'s last events written into row ``rows[i]``, ending before column ``ends[i]``."""
        items = np.zeros(shape, np.int64)
        events = np.zeros(shape, np.int64)
        values = np.zeros(shape, np.float32)
        gaps = np.zeros(shape, np.float32)
        hours = np.zeros(shape, np.float32)
        weights = np.zeros(shape, np.float32)
        rated = np.zeros(shape, np.float32)
        owner = np.zeros(shape, np.int64) if segments else None
        for i, ((start, stop), row, end) in enumerate(zip(spans.tolist(), rows.tolist(), ends.tolist(),
                                                          strict=True)):
            start = max(start, stop - shape[1])
            width = stop - start
            if width <= 0:
                continue
            cols = slice(end - width, end)
            items[row, cols] = self.item_idx[start:stop] + 1
            events[row, cols] = self.event_idx[start:stop]
            values[row, cols] = self.values[start:stop]
            times = self.times[start:stop]
            previous = np.concatenate([[times[0]], times[:-1]])
            gaps[row, cols] = np.log1p(np.maximum(times - previous, 0.0))
            # capped: a gap of ages (timestamps 1e300 apart) stays "long ago" instead of overflowing float32
            hours[row, cols] = np.minimum((times[-1] - times) / 3600.0, MAX_HOURS)
            weights[row, cols] = self.weights[start:stop]
            rated[row, cols] = self.rated[start:stop]
            if owner is not None:
                owner[row, cols] = i + 1
        arrays = (items, events, values, gaps, hours, weights, rated)
        if users is None:  # a non-empty span ends inside (offsets[u], offsets[u + 1]]
            n = len(spans)
            users = np.searchsorted(self.offsets, spans[:, 1], side="left") - 1 if n else np.empty(0)
        return SequenceBatch(*(torch.from_numpy(a) for a in arrays),
                             users=torch.from_numpy(users.astype(np.int64)),
                             segments=None if owner is None else torch.from_numpy(owner))

    def prefixes(self, rows: np.ndarray, n: int) -> Histories:
        """The histories of rows ``rows`` cut to their first ``n`` events (a new user's view)."""
        starts = self.offsets[rows]
        lengths = np.minimum(self.lengths[rows], n)
        picked = (np.repeat(starts, lengths) + np.arange(lengths.sum())
                  - np.repeat(np.cumsum(lengths) - lengths, lengths)).astype(np.int64)
        return Histories(
            user_ids=self.user_ids[rows], offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
            item_idx=self.item_idx[picked], event_idx=self.event_idx[picked], values=self.values[picked],
            times=self.times[picked], weights=self.weights[picked], rated=self.rated[picked])

    def latest(self, users: np.ndarray, length: int) -> SequenceBatch:
        """The last ``length`` events of the users at rows ``users``."""
        return self.batch(np.stack([self.offsets[users], self.offsets[users + 1]], axis=1), length, users)
