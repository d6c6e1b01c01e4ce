"""The encoder interface every modality backend implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from mmrec.registry import Registry

__all__ = ["Encoder", "FileEncoder", "ENCODERS", "MODALITIES"]

MODALITIES = ("text", "image", "audio")


class Encoder(ABC):
    """Turns one modality of an item into a fixed-size float32 vector.

    The encode loop calls, per item, :meth:`prepare` on the raw catalog value (a dict of text fields,
    or a media file path); ``prepare`` returns ``None`` when the item has nothing to encode and raises
    :class:`mmrec.errors.MediaError` when the value is broken. Encoders that learn from the corpus
    (``requires_fit``) get :meth:`fit` on all prepared inputs first; :meth:`encode` then maps a batch
    of prepared inputs to an array of shape ``(len(batch), dim)``, dtype float32.
    """

    modality: ClassVar[str]
    config_class: ClassVar[type]  # frozen dataclass of the encoder's parameters
    requires_fit: ClassVar[bool] = False

    @property
    @abstractmethod
    def dim(self) -> int:
        """Output dimension."""

    def prepare(self, raw: Any) -> Any:
        """Decode/clean one raw catalog value; ``None`` = nothing to encode."""
        return raw

    def preparer(self) -> Callable[[Any], Any]:
        """A picklable callable doing :meth:`prepare`, run in DataLoader workers. Encoders holding a
        model return a small object without it (the default, the bound method, carries ``self``)."""
        return self.prepare

    @property
    def decodes_files(self) -> bool:
        """Whether :meth:`prepare` reads and decodes files (then worth running in workers)."""
        return self.modality in ("image", "audio")

    def length_of(self, raw: Any) -> int | None:
        """A cheap size of one raw catalog value, when batching values of similar size saves work
        (a transformer pads every text of a batch to the longest): the encode loop then batches
        items longest first and writes each vector back to its item. ``None`` (the default):
        catalog order."""
        return None

    def fit(self, inputs: Sequence[Any]) -> Encoder:
        """Learn from the prepared inputs of the whole catalog (no-op unless ``requires_fit``)."""
        return self

    @abstractmethod
    def encode(self, batch: Sequence[Any]) -> np.ndarray:
        """Encode prepared inputs: float32 array of shape ``(len(batch), dim)``."""

    def weight_paths(self) -> list[Path]:
        """Files or folders whose bytes determine the outputs (pretrained weights); their digests
        enter the encode cache's fingerprint."""
        return []

    @property
    def random_init(self) -> bool:
        """True when the network runs with random weights (no pretrained weights were given):
        its vectors then reflect low-level statistics only."""
        return False

    def describe(self) -> dict[str, Any]:
        """A JSON-friendly description stored with the vectors it produced."""
        return {"class": type(self).__name__, "modality": self.modality, "dim": self.dim}


class FileEncoder(Encoder):
    """An encoder whose inputs are media files decoded by a picklable ``preprocess`` callable
    (set in ``__init__``), which also runs in DataLoader workers."""

    preprocess: Callable[[Any], Any]

    def prepare(self, raw: Any) -> Any:
        return self.preprocess(raw)

    def preparer(self) -> Callable[[Any], Any]:
        return self.preprocess


ENCODERS: Registry[type[Encoder]] = Registry("encoder")
