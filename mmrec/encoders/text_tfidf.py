"""Text: TF-IDF over the item's text fields, reduced by truncated SVD (latent semantic analysis)."""

from __future__ import annotations

import numbers
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
        def whole(value: object, low: int) -> bool:
            return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= low

        if not whole(self.dim, 1):
            raise ConfigError(f"text encoder dim must be an integer >= 1, got {self.dim!r}")
        ngrams = self.ngram_range
        if (isinstance(ngrams, str) or not isinstance(ngrams, Sequence) or len(ngrams) != 2
                or not all(whole(n, 1) for n in ngrams) or ngrams[0] > ngrams[1]):
            raise ConfigError(f"ngram_range must be two integers 1 <= low <= high, got {ngrams!r}.")
        object.__setattr__(self, "ngram_range", tuple(int(n) for n in ngrams))
        if not whole(self.min_df, 1):
            raise ConfigError(f"min_df (items a term must appear in) must be an integer >= 1, "
                              f"got {self.min_df!r}.")
        if self.max_features is not None and not whole(self.max_features, 1):
            raise ConfigError(f"max_features must be an integer >= 1 or null, got {self.max_features!r}.")
        if self.stop_words not in (None, "english"):
            raise ConfigError(f"stop_words must be 'english' or null, got {self.stop_words!r}.")


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
        self.vectorizer_, self.svd_ = vectorizer, None
        try:
            tfidf = vectorizer.fit_transform(texts)
        except ValueError:  # e.g. every document only stop words: retry keeping them
            vectorizer.set_params(stop_words=None, token_pattern=r"(?u)\b\w+\b")
            try:
                tfidf = vectorizer.fit_transform(texts)
            except ValueError:  # no word at all ("!!!"), or none in min_df items: nothing to encode
                self.vectorizer_ = None
                return
        n_components = min(cfg.dim, tfidf.shape[1] - 1, tfidf.shape[0] - 1)
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
            info["vocabulary_size"] = 0 if self.vectorizer_ is None else len(self.vectorizer_.vocabulary_)
            info["svd_components"] = 0 if self.svd_ is None else int(self.svd_.n_components)
        return info
