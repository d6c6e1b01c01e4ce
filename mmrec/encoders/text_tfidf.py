"""Text: TF-IDF over the item's text fields, reduced by truncated SVD (latent semantic analysis)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mmrec.encoders.base import ENCODERS
from mmrec.encoders.text_base import TextEncoder
from mmrec.errors import ConfigError, NotFittedError


@dataclass(frozen=True)
class TfidfSvdConfig:
    """Parameters of :class:`TfidfSvdEncoder` (see the ``text-tfidf-svd`` preset for meanings)."""

    dim: int = 128
    max_features: int | None = 50_000
    ngram_range: tuple[int, int] = (1, 2)
    min_df: int = 1
    sublinear_tf: bool = True
    stop_words: str | None = "english"
    field_separator: str = ". "
    field_weights: Mapping[str, float] | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "ngram_range", tuple(self.ngram_range))
        if self.dim < 1:
            raise ConfigError(f"text encoder dim must be >= 1, got {self.dim}")


@ENCODERS.register("tfidf-svd", "tfidf", "lsa")
class TfidfSvdEncoder(TextEncoder):
    """TF-IDF (scikit-learn) of the text, then ``TruncatedSVD`` to ``dim``, L2-normalised.

    When the corpus supports fewer than ``dim`` SVD components, the remaining dimensions are zero,
    so the output dimension is always ``dim``.
    """

    config_class = TfidfSvdConfig
    requires_fit = True

    def __init__(self, config: TfidfSvdConfig | None = None, *, device: Any = None) -> None:
        self.config = config or TfidfSvdConfig()

    @property
    def dim(self) -> int:
        return self.config.dim

    def fit_texts(self, texts: Sequence[str]) -> None:
        from sklearn.decomposition import TruncatedSVD
        from sklearn.feature_extraction.text import TfidfVectorizer

        cfg = self.config
        if not texts:
            raise ConfigError("text encoder: no item has any text to fit TF-IDF on.")
        vectorizer = TfidfVectorizer(
            max_features=cfg.max_features, ngram_range=cfg.ngram_range, min_df=cfg.min_df,
            sublinear_tf=cfg.sublinear_tf, stop_words=cfg.stop_words, dtype=np.float32,
        )
        try:
            tfidf = vectorizer.fit_transform(texts)
        except ValueError:  # e.g. every document only stop words: retry keeping them
            vectorizer.set_params(stop_words=None, token_pattern=r"(?u)\b\w+\b")
            tfidf = vectorizer.fit_transform(texts)
        n_components = min(cfg.dim, tfidf.shape[1] - 1, tfidf.shape[0] - 1)
        self.vectorizer_ = vectorizer
        self.svd_ = None
        if n_components >= 1:
            self.svd_ = TruncatedSVD(n_components=n_components, random_state=cfg.seed,
                                     algorithm="randomized", n_iter=7).fit(tfidf)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        if not hasattr(self, "vectorizer_"):
            raise NotFittedError("TfidfSvdEncoder is not fitted; call fit(texts) first.")
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if self.svd_ is None or not texts:
            return out
        reduced = self.svd_.transform(self.vectorizer_.transform(texts)).astype(np.float32)
        norms = np.linalg.norm(reduced, axis=1, keepdims=True)
        out[:, : reduced.shape[1]] = reduced / np.maximum(norms, 1e-12)
        return out

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        if hasattr(self, "vectorizer_"):
            info["vocabulary_size"] = len(self.vectorizer_.vocabulary_)
            info["svd_components"] = 0 if self.svd_ is None else int(self.svd_.n_components)
        return info
