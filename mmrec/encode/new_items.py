"""Encode items that arrive after training with the run's own encoders (cold-start adds).

The run's item vectors record, per modality, the encoder preset that made them. New items are
encoded with the same presets; an encoder that learns from the corpus (TF-IDF, word vectors) is
fitted once on the catalog it was trained with, never refitted on the handful of new items. The
result carries the catalog's scalers, so :meth:`mmrec.TwoTower.encode_items` fuses new items
exactly like the old ones (content only: they have no id embedding).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mmrec.data.catalog import Catalog
from mmrec.encode.attributes import ATTRIBUTES, encode_attributes
from mmrec.encode.batches import MODALITY_SOURCES, fit_on_corpus, record_modality
from mmrec.encode.local import encode_modality
from mmrec.encoders.base import Encoder
from mmrec.encoders.presets import create_encoder
from mmrec.errors import ConfigError
from mmrec.vectors.item_vectors import EncodeReport, ItemVectors

__all__ = ["NewItemEncoder", "append_items"]


class NewItemEncoder:
    """Encodes new catalog rows like ``reference`` (the run's item vectors) was encoded.

    Parameters
    ----------
    reference : ItemVectors
        Gives the modalities, their encoder presets and scalers.
    catalog : Catalog
        The catalog the reference was encoded from (to fit corpus-dependent encoders).
    """

    def __init__(self, reference: ItemVectors, catalog: Catalog, *, device: Any = "cpu") -> None:
        self.reference, self.catalog, self.device = reference, catalog, device
        self._encoders: dict[str, Encoder] = {}

    def encoder(self, modality: str) -> Encoder:
        """The modality's encoder, built (and fitted on the catalog if it learns) on first use."""
        if modality not in self._encoders:
            preset = (self.reference.encoders.get(modality) or {}).get("preset")
            if not preset:
                raise ConfigError(f"the {modality} vectors were not made from a preset (their encoder was "
                                  "a Python object); new items need the preset name to be re-encoded.")
            encoder = create_encoder(preset, device=self.device)
            if encoder.requires_fit:
                raws = MODALITY_SOURCES.get(modality)(self.catalog) or []
                fit_on_corpus(encoder, self.catalog.ids, raws, batch_size=32, num_workers=0,
                              show_progress=False, issues=[])  # the catalog's failures were reported
            self._encoders[modality] = encoder
        return self._encoders[modality]

    def encode(self, items: Catalog) -> ItemVectors:
        """Per-modality vectors of ``items`` (masks where a modality is absent or fails to decode;
        the failures are in ``report``)."""
        ids = items.ids
        vectors, masks, report = {}, {}, EncodeReport()
        for modality in self.reference.modalities:
            raws = MODALITY_SOURCES.get(modality)(items) if modality in MODALITY_SOURCES else None
            spec = (self.reference.encoders.get(modality) or {}).get("spec")
            if modality == ATTRIBUTES and spec is not None:  # catalog columns, read as at encode time
                matrix, mask = encode_attributes(items, spec)
                issues = []
            elif raws is None:
                width = self.reference.vectors[modality].shape[1]
                matrix, mask, issues = np.zeros((len(ids), width), np.float32), np.zeros(len(ids), bool), []
            else:
                matrix, mask, issues, _ = encode_modality(
                    self.encoder(modality), ids, raws, batch_size=32, num_workers=0, cache=None,
                    out_folder=None, show_progress=False, fit=False)
            vectors[modality], masks[modality] = matrix, mask
            record_modality(report, modality, mask, issues, hits=0)
        return ItemVectors(ids, vectors, masks, scalers=self.reference.scalers, report=report,
                           encoders=self.reference.encoders)


def append_items(old: ItemVectors, new: ItemVectors) -> ItemVectors:
    """``old`` followed by ``new`` (same modalities; ``old``'s scalers, encoders and fusion kind)."""
    if set(old.modalities) != set(new.modalities) or old.dim != new.dim:
        raise ConfigError(f"cannot append items with modalities {new.modalities} (fused dim {new.dim}) "
                          f"to {old.modalities} (fused dim {old.dim}).")
    return ItemVectors(np.concatenate([old.ids, new.ids]),
                       {m: np.concatenate([old.vectors[m], new.vectors[m]]) for m in old.modalities},
                       {m: np.concatenate([old.masks[m], new.masks[m]]) for m in old.modalities},
                       fusion_weights=old.fusion_weights, scalers=old.scalers,
                       fused=np.concatenate([old.fused, new.fused]),
                       encoders=old.encoders, fusion_kind=old.fusion_kind)
