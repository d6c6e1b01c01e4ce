"""What every fitted part of a :class:`~mmrec.TwoTower` is: the hooks ``fit`` and serving call.

A part is fitted on what :meth:`TwoTower.fit <mmrec.TwoTower.fit>` was given (:class:`FitData`) and
on the parts before it, keeps what it learned in ``*_`` attributes, and saves it on its own
(:meth:`Part.save`: a ``safetensors`` file, its ids and a checked JSON manifest, through
:func:`mmrec.utils.state.save_state`). At serving time the model asks each part for its share:
a term added to the scores, an extension of the user or item vectors. A part that has nothing to
add (switched off, or not fitted) adds nothing.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np
import pandas as pd
import torch

from mmrec.data.interactions import EventWeights, Interactions
from mmrec.errors import ArtifactError
from mmrec.evaluation.metrics import targets_per_user
from mmrec.models.config import TrainConfig, TwoTowerConfig
from mmrec.models.histories import Histories
from mmrec.models.user_features import UserCodes, UserFeatureSchema
from mmrec.utils.state import load_state, save_state
from mmrec.vectors.item_vectors import ItemVectors

__all__ = ["Composition", "FitData", "Part", "PartAttribute", "ScoreTerm", "validation_sample"]

PART_FORMAT_VERSION = 1
ScoreTerm = Callable[[np.ndarray], torch.Tensor]  # history rows -> what a part adds to their scores


@dataclass
class FitData:
    """What :meth:`TwoTower.fit` hands its parts, in their order. A part that runs before training
    may narrow it (the prior holds users out of ``events`` and ``valid``); the network fills
    ``valid`` (each user's last event) when none was given, and sets ``device``."""

    items: ItemVectors | None
    events: Interactions
    valid: Interactions | None
    counted: Interactions                    # every event given to fit: what popularity counts
    training: TrainConfig
    users: pd.DataFrame | None = None        # the user-attribute table given to fit
    checkpoint_dir: str | os.PathLike[str] | None = None
    show_progress: bool | None = None
    epoch_scale: float = 1.0                 # an epoch's steps relative to one pass over ``events``
    user_schema: UserFeatureSchema | None = None
    codes: Callable[[np.ndarray], UserCodes | None] = lambda user_ids: None
    device: torch.device | None = None


class Composition(Protocol):
    """What a part may ask of the model it belongs to (:class:`mmrec.TwoTower`): its configuration,
    the other parts, and the scores the parts make together. Parts know this protocol, never the
    class, so the model imports its parts and not the other way round."""

    config: TwoTowerConfig
    training: TrainConfig
    event_weights: EventWeights
    parts: dict[str, Part]

    @property
    def network(self) -> Any: ...            # the Network part (mmrec.models.parts.network)

    @property
    def attributes(self) -> Any: ...         # the UserAttributes part

    @property
    def item_ids_(self) -> pd.Index | None: ...

    def score_terms(self, histories: Histories, device: torch.device) -> list[ScoreTerm]: ...

    def evaluate(self, history: Interactions, targets: Interactions, *, ks: Sequence[int] = ...,
                 exclude_seen: bool = ..., candidate_aware: bool = ...,
                 device: str | None = ...) -> dict[str, float]: ...


class Part(ABC):
    """A fitted piece of a TwoTower. Subclasses set ``name`` (its folder in a saved model), give
    :meth:`state` and :meth:`set_state`, and override the hooks they need; the defaults add nothing."""

    name: ClassVar[str]

    @classmethod
    def for_model(cls, model: Composition) -> Part:
        """A fresh, unfitted part for ``model`` (its configuration read from the model)."""
        return cls()

    # ------------------------------------------------------------------------------ fitting
    def before_training(self, model: Composition, data: FitData) -> None:
        """Runs, for every part in order, before any part's :meth:`fit`."""
        return None  # the default: nothing to do

    def reserve_items(self, model: Composition, data: FitData) -> np.ndarray | None:
        """A mask over the item table of items whose id embeddings training must leave untrained
        (asked once the network is built, before it trains); ``None``: none."""
        return None

    def fit(self, model: Composition, data: FitData) -> None:
        """Learn this part's state from ``data`` and the parts fitted before it."""
        return None  # the default: nothing to do

    @property
    def fitted(self) -> bool:
        """Whether the part holds fitted state (only those are saved)."""
        return False

    # ------------------------------------------------------------------------------ serving
    def score_term(self, model: Composition, histories: Histories, device: torch.device) -> ScoreTerm | None:
        """What the part adds to the cosines of the histories' users and every model item (the
        model scales it like the cosines); ``None``: nothing."""
        return None

    def user_vectors(self, model: Composition, histories: Histories, vectors: np.ndarray,
                     has_signal: np.ndarray) -> np.ndarray:
        """The users' vectors after this part (``vectors``: the parts' before it)."""
        return vectors

    def item_vectors(self, model: Composition, items: ItemVectors | None, fused: np.ndarray) -> np.ndarray:
        """The items' vectors after this part (``fused``: the parts' before it)."""
        return fused

    @property
    def extra_width(self) -> int:
        """Coordinates the part appends to user and item vectors."""
        return 0

    @property
    def user_scale(self) -> float:
        """Factor on the norm of the learned part of a user vector."""
        return 1.0

    def check(self, model: Composition) -> None:
        """After a load through the model: raise ``ValueError`` when the state does not fit the
        other parts (say, a table of another size)."""
        return None  # the default: nothing to do

    # ------------------------------------------------------------------------------ persistence
    def params(self) -> dict[str, Any]:
        """What :meth:`from_params` needs to make the part again (JSON)."""
        return {}

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Part:
        return cls()

    @abstractmethod
    def state(self) -> dict[str, Any]:
        """The fitted state as :func:`mmrec.utils.state.save_state` stores it."""

    @abstractmethod
    def set_state(self, state: dict[str, Any]) -> None:
        """Take the state :meth:`state` gave (checked; ``ValueError``/``KeyError`` when it does not fit)."""

    @classmethod
    def kind(cls) -> str:
        return f"two_tower.{cls.name}"

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the fitted state into a folder, atomically (safetensors + JSON, checksummed)."""
        return save_state(path, self.kind(), params=self.params(), state=self.state(),
                          version=PART_FORMAT_VERSION)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Part:
        """Read a folder :meth:`save` wrote (checksums, dtypes and shapes checked; no pickle)."""
        params, state = load_state(path, cls.kind(), version=PART_FORMAT_VERSION)
        try:
            return cls.from_state(params, state)
        except (KeyError, ValueError, TypeError) as exc:
            raise ArtifactError(f"{Path(path).name}: the {cls.name} part cannot be read ({exc}); "
                                "re-save the model.") from exc

    @classmethod
    def from_state(cls, params: dict[str, Any], state: dict[str, Any]) -> Part:
        """The part :meth:`params` and :meth:`state` describe."""
        part = cls.from_params(params)
        part.set_state(state)
        return part


class PartAttribute:
    """A part's fitted attribute, read (and set) as the model's own: ``TwoTower.prior_ =
    PartAttribute("prior", "prior_")`` makes ``model.prior_`` ``model.parts["prior"].prior_``."""

    def __init__(self, part: str, attribute: str) -> None:
        self.part, self.attribute = part, attribute

    def __get__(self, model: Any, owner: type) -> Any:
        return self if model is None else getattr(model.parts[self.part], self.attribute)

    def __set__(self, model: Any, value: Any) -> None:
        setattr(model.parts[self.part], self.attribute, value)


def validation_sample(item_ids: pd.Index, valid: Interactions, *, seed: int, salt: int, cap: int
                      ) -> tuple[np.ndarray, list[np.ndarray]]:
    """Up to ``cap`` validation users (a seeded sample; fewer on a large catalog, so that their
    ``(users × items)`` scores fit in memory) and each one's validation item rows: what the parts
    fitted after training are validated on."""
    users = pd.unique(valid.frame["user"].to_numpy(dtype=object))
    limit = int(max(20, min(cap, 2e7 // max(len(item_ids), 1))))
    if len(users) > limit:
        picked = np.random.default_rng([seed, salt]).choice(len(users), limit, replace=False)
        users = users[np.sort(picked)]
    rows = pd.Index(users).get_indexer(valid.frame["user"])
    columns = item_ids.get_indexer(valid.frame["item"].to_numpy(dtype=object))
    keep = (rows >= 0) & (columns >= 0)
    return users, targets_per_user(rows[keep], columns[keep], len(users))
