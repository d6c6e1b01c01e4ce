"""Reading a TwoTower folder of ``format_version`` 1 (mmrec up to f0ce60e): one ``model.safetensors``
whose tensor names carry the part as a prefix (``net.``, ``scaler.``, ``prior.``, ``blend.``), one
``item_ids.json``, and every part's settings in the one manifest. Gives each part's ``(params,
state)`` as the part folders of today's layout hold them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["V1_FILES", "read_v1"]

V1_FILES = ["model.safetensors", "item_ids.json"]


def read_v1(path: Path, manifest: dict[str, Any]) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """``name -> (params, state)`` of the parts a version-1 folder holds (its checksums already
    verified by :func:`mmrec.utils.io.read_manifest`)."""
    from safetensors.numpy import load_file

    tensors = load_file(str(path / "model.safetensors"))
    ids = pd.Index(json.loads((path / "item_ids.json").read_text("utf-8")), dtype=object)

    def prefixed(prefix: str) -> dict[str, np.ndarray]:
        return {name[len(prefix):]: value for name, value in tensors.items() if name.startswith(prefix)}

    network = {**{f"net.{k}": v for k, v in prefixed("net.").items()},
               **{f"scaler.{k}": v for k, v in prefixed("scaler.").items()},
               "item_ids": ids, "events": manifest["events"], "modalities": manifest["modalities"],
               "tokens": manifest["tokens"], "history": manifest.get("history"),
               "user_schema": manifest.get("user_schema")}
    parts = {"network": ({key: manifest[key] for key in ("config", "training", "event_weights")}, network)}
    if manifest.get("user_schema"):
        parts["attributes"] = ({}, {"schema": manifest["user_schema"]})
    if manifest.get("prior"):
        parts["prior"] = ({}, {"item_ids": ids, "prior": manifest["prior"], **prefixed("prior.")})
    if manifest.get("blend"):
        parts["content_blend"] = ({}, {"blend": manifest["blend"], **prefixed("blend.")})
    return parts
