"""What a ranking request asks for, in one frozen object that every ranking path takes.

:func:`mmrec.recommend`, :func:`mmrec.recommend_batches`, :meth:`mmrec.OnlineRecommender.recommend`
(and :class:`~mmrec.ranking.scored_online.ScoredOnline`), ``Service.recommend``, ``GET /recommend/{user}``
and ``mmrec recommend`` all read their ranking options from a :class:`RankingOptions`; keyword
arguments of the same names are overrides applied on top of it (``dataclasses.replace``), so a new
option is added here, once::

    options = mmrec.RankingOptions(k=20, where={"category": ["shoes"]}, diversify=0.3)
    recs = mmrec.recommend(index, events, options=options)
    same = mmrec.recommend(index, events, k=20, where={"category": ["shoes"]}, diversify=0.3)
    more = mmrec.recommend(index, events, options=options, k=50)  # a keyword overrides a field
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from numbers import Real
from typing import Any

import numpy as np

from mmrec.data.interactions import EventWeights
from mmrec.data.validation import positive_int
from mmrec.errors import ConfigError
from mmrec.ranking.rerank import check_diversify

__all__ = ["RankingOptions", "resolve_options", "check_half_life", "reject_options"]


def check_half_life(half_life: object) -> float | None:
    """``half_life`` unchanged when it is None or a number > 0 (seconds); a :class:`ConfigError`
    otherwise."""
    if half_life is not None and (isinstance(half_life, bool) or not isinstance(half_life, Real)
                                  or not half_life > 0):
        raise ConfigError(f"half_life must be > 0 seconds, got {half_life!r}.")
    return half_life


@dataclass(frozen=True)
class RankingOptions:
    """How to rank: the options shared by every ranking path, checked once when built.

    Parameters
    ----------
    k : int
        Items per user (>= 1). Honoured while enough unseen items pass the filter.
    exclude_seen : bool
        Leave out the items the user already interacted with.
    where : mapping of str to value or list, optional
        Filter on the index's item attributes: ``{"category": ["shoes", "bags"], "in_stock": True}``
        keeps items whose column equals the value or is one of the list (build the index with
        ``attributes=catalog``). Copied when the options are built; empty means no filter.
    diversify : float
        λ in [0, 1]: re-rank each user's top candidates by their item vectors for variety; 0 keeps
        the model's ranking (see :mod:`mmrec.ranking.rerank`).
    rerank : str
        The re-ranker for ``diversify``: ``"mmr"`` (maximal marginal relevance) or ``"dpp"``.
    event_weights : EventWeights, optional
        How much each event type counts in a content profile (:func:`mmrec.user_vectors`).
        Only :func:`mmrec.recommend` / :func:`mmrec.recommend_batches` without a model read it: a
        model and a live recommender weigh events as they were built to, and refuse it.
    half_life : float, optional
        Recency decay of a content profile, in seconds: an event ``half_life`` older than the
        user's latest counts half. Read where ``event_weights`` is, refused where it is.

    Raises
    ------
    ConfigError
        ``k`` not an integer >= 1, ``diversify`` outside [0, 1], ``half_life`` not > 0, or a field
        of the wrong type; ``UnknownNameError`` for an unknown ``rerank``.
    """

    k: int = 10
    exclude_seen: bool = True
    where: Mapping[str, Any] | None = None
    diversify: float = 0.0
    rerank: str = "mmr"
    event_weights: EventWeights | None = None
    half_life: float | None = None

    def __post_init__(self) -> None:
        # frozen: the checked values replace the given ones through object.__setattr__
        object.__setattr__(self, "k", positive_int(self.k, name="k"))
        if not isinstance(self.exclude_seen, bool | np.bool_):
            raise ConfigError(f"exclude_seen must be True or False, got {self.exclude_seen!r}.")
        object.__setattr__(self, "exclude_seen", bool(self.exclude_seen))
        if self.where is not None and not isinstance(self.where, Mapping):
            raise ConfigError(f"where must map item attributes to a value or a list of values "
                              f"({{'category': ['shoes']}}), got {type(self.where).__name__} {self.where!r}.")
        # a copy, so that later edits of the caller's dict don't leak in; empty means no filter
        object.__setattr__(self, "where", dict(self.where) if self.where else None)
        object.__setattr__(self, "diversify", check_diversify(self.diversify, self.rerank))
        if self.event_weights is not None and not isinstance(self.event_weights, EventWeights):
            raise ConfigError(f"event_weights must be an mmrec.EventWeights, got "
                              f"{type(self.event_weights).__name__}.")
        check_half_life(self.half_life)


FIELDS = tuple(f.name for f in dataclasses.fields(RankingOptions))


def resolve_options(options: RankingOptions | None, overrides: Mapping[str, Any], *,
                    caller: str) -> RankingOptions:
    """``options`` (default: ``RankingOptions()``) with the keyword ``overrides`` replacing its
    fields, checked again; an unknown keyword is a :class:`ConfigError` naming the valid ones."""
    if options is None:
        options = RankingOptions()
    elif not isinstance(options, RankingOptions):
        raise ConfigError(f"{caller}: options must be an mmrec.RankingOptions, got "
                          f"{type(options).__name__}.")
    unknown = sorted(set(overrides) - set(FIELDS))
    if unknown:
        close = [m for name in unknown for m in difflib.get_close_matches(name, FIELDS, n=1)]
        hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
        raise ConfigError(f"{caller}: unknown option(s) {unknown}{hint}; ranking options: {list(FIELDS)}.")
    return dataclasses.replace(options, **overrides) if overrides else options


def reject_options(options: RankingOptions, names: Iterable[str], *, caller: str, why: str) -> None:
    """A :class:`ConfigError` when any of ``names`` is set (not None) in ``options``: a path that
    cannot honour an option refuses it rather than ignoring it."""
    given = [name for name in names if getattr(options, name) is not None]
    if given:
        raise ConfigError(f"{caller}: {' and '.join(given)} cannot apply here: {why}; leave "
                          f"{'them' if len(given) > 1 else 'it'} unset.")
