"""Shared text handling: fields → documents, field weights, weighted pooling of field embeddings."""

from __future__ import annotations

import re
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mmrec.encoders.base import Encoder

# A prepared text input: (text, weight) pairs, one per field (or one joined document).
TextInput = list[tuple[str, float]]
SURROGATE = re.compile("[\ud800-\udfff]")


def valid_unicode(text: str) -> str:
    """``text`` with UTF-16 surrogates paired into their characters and lone ones replaced by U+FFFD
    (JSON ``"\\ud800"`` escapes, ``surrogateescape``-decoded bytes): tokenizers, UTF-8 writers and
    Arrow refuse them."""
    if SURROGATE.search(text) is None:
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


class TextEncoder(Encoder):
    """Base of text encoders: subclasses embed plain strings (:meth:`embed_texts`).

    With ``field_weights`` (e.g. ``{"title": 2, "body": 1}``; unlisted fields weigh 1, weight 0 drops a
    field) each field is embedded on its own and the item vector is the weighted mean of its fields'
    vectors, L2-normalised. Without it the fields are joined into one document.
    """

    modality = "text"

    @property
    def field_weights(self) -> Mapping[str, float] | None:
        return getattr(self.config, "field_weights", None)

    def prepare(self, raw: Mapping[str, str] | str | None) -> TextInput | None:
        if raw is None:
            return None
        fields = {"text": raw} if isinstance(raw, str) else raw
        present = {name: valid_unicode(text.strip()) for name, text in fields.items()
                   if text and text.strip()}
        if not present:
            return None
        weights = self.field_weights
        if weights is None:
            return [(self.config.field_separator.join(present.values()), 1.0)]
        pairs = [(text, float(weights.get(name, 1.0))) for name, text in present.items()]
        pairs = [(text, w) for text, w in pairs if w > 0]
        return pairs or None

    @staticmethod
    def flatten(batch: Sequence[TextInput]) -> tuple[list[str], np.ndarray, np.ndarray]:
        """All texts of a batch, their weights, and the item each belongs to."""
        texts = [text for pairs in batch for text, _ in pairs]
        weights = np.array([w for pairs in batch for _, w in pairs], dtype=np.float32)
        owners = np.repeat(np.arange(len(batch)), [len(pairs) for pairs in batch])
        return texts, weights, owners

    def fit(self, inputs: Sequence[TextInput]) -> TextEncoder:
        self.fit_texts(self.flatten(inputs)[0])
        return self

    def fit_texts(self, texts: Sequence[str]) -> None:
        """Learn from the corpus (no-op unless the encoder ``requires_fit``)."""

    @abstractmethod
    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Embed strings: float32 ``(len(texts), dim)``."""

    def encode(self, batch: Sequence[TextInput]) -> np.ndarray:
        out = np.zeros((len(batch), self.dim), dtype=np.float32)
        if not batch:
            return out
        texts, weights, owners = self.flatten(batch)
        embedded = self.embed_texts(texts)
        np.add.at(out, owners, embedded * weights[:, None])
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return np.ascontiguousarray(out / np.maximum(norms, 1e-12), dtype=np.float32)

    def describe(self) -> dict[str, Any]:
        from mmrec.utils.config import config_to_dict

        return super().describe() | {"config": config_to_dict(self.config)}
