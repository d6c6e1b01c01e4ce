"""Every recommender by name (for config files and the CLI) and every saved model by its format.

- :data:`MODELS`: ``"ease"``, ``"two_tower"``, ``"lightgcn"`` … → the class (``make_model``)
- :data:`SAVED_FORMATS`: a saved folder's manifest ``format`` → the class whose ``load`` reads it
  (``load_model``), so ``mmrec recommend / evaluate / serve`` open any saved model.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from mmrec.baselines import BASELINES, LightGCN
from mmrec.baselines.base import ARTIFACT_PREFIX
from mmrec.data.interactions import Interactions
from mmrec.errors import ArtifactError, ConfigError
from mmrec.evaluation.tune import ScoreBlend
from mmrec.models.two_tower import ARTIFACT_KIND as TWO_TOWER_FORMAT
from mmrec.models.two_tower import TwoTower
from mmrec.registry import Registry
from mmrec.utils.io import manifest_format
from mmrec.vectors.item_vectors import ItemVectors

__all__ = ["MODELS", "SAVED_FORMATS", "make_model", "load_model", "WithoutContent", "Pretrained"]

MODELS: Registry[Any] = Registry("model")
for _name in BASELINES.names():
    MODELS.add(_name, BASELINES.get(_name))
MODELS.add("two_tower", TwoTower, "twotower", "tower")
MODELS.add("lightgcn", LightGCN, "graph")

SAVED_FORMATS: dict[str, type] = {TWO_TOWER_FORMAT: TwoTower, ScoreBlend.artifact_name: ScoreBlend}
SAVED_FORMATS.update({ARTIFACT_PREFIX + cls.artifact_name: cls
                      for cls in {MODELS.get(name) for name in MODELS.names()} if cls is not TwoTower})


def load_model(path: str | os.PathLike[str]) -> Any:
    """Any saved model (``model.save(path)``), read by the class its manifest names; the artifact
    is checked (checksums, shapes) before use."""
    found = manifest_format(path, expected="model")
    if found not in SAVED_FORMATS:
        raise ArtifactError(f"{os.fspath(path)} holds a {found!r} artifact, not a saved model (models: "
                            f"{', '.join(sorted(SAVED_FORMATS))}).")
    return SAVED_FORMATS[found].load(path)


ScoreBlend.load_part = staticmethod(load_model)


class WithoutContent:
    """Wraps a model so the harness fits it without item vectors (an id-only comparison)."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def fit(self, items: ItemVectors | None, events: Interactions, *,
            valid: Interactions | None = None) -> WithoutContent:
        self.model.fit(None, events, valid=valid)
        return self

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)


class Pretrained:
    """Wraps a loaded model so the harness evaluates it as it is (``fit`` does nothing)."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def fit(self, items: ItemVectors | None, events: Interactions, *,
            valid: Interactions | None = None) -> Pretrained:
        return self

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)


def make_model(name: str, options: Mapping[str, Any] | None = None) -> Any:
    """A model from its config entry: ``kind`` (default ``name``) picks the class, the rest are its
    keyword arguments; ``content: false`` wraps it in :class:`WithoutContent`; ``path: DIR`` loads a
    saved model instead (evaluated as it is, not refitted)."""
    options = dict(options or {})
    if "path" in options:
        path = options.pop("path")
        if options:
            raise ConfigError(f"model {name!r}: a saved model (path: {path}) takes no other options, "
                              f"got {sorted(options)}.")
        return Pretrained(load_model(path))
    kind = options.pop("kind", name)
    use_content = options.pop("content", True)
    try:
        model = MODELS.get(kind)(**options)
    except TypeError as exc:
        raise ConfigError(f"model {name!r} ({kind}): {exc}") from exc
    return model if use_content else WithoutContent(model)


