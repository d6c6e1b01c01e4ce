"""Checkpoints of a training run: weights and optimizer state as safetensors, progress as JSON.

Written atomically into one folder per run (a killed run leaves the previous checkpoint intact);
nothing is pickled and loading never executes code.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from mmrec.errors import ArtifactError
from mmrec.utils.io import MANIFEST, atomic_directory, leftovers, read_manifest, write_manifest

__all__ = ["save_checkpoint", "load_checkpoint", "optimizer_tensors", "restore_optimizer"]

KIND = "training_checkpoint"
FORMAT_VERSION = 1
FILES = ["model.safetensors", "best.safetensors", "optimizer.safetensors", "progress.json"]


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer's state into tensors (for safetensors) and JSON-friendly metadata."""
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for param_id, values in state["state"].items():
        for key, value in values.items():
            if torch.is_tensor(value):
                tensors[f"{param_id}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(param_id), {})[key] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor],
                      meta: dict[str, Any]) -> None:
    """Inverse of :func:`optimizer_tensors`."""
    state: dict[int, dict[str, Any]] = {}
    for name, tensor in tensors.items():
        param_id, key = name.split(".", 1)
        state.setdefault(int(param_id), {})[key] = tensor
    for param_id, values in meta["scalars"].items():
        state.setdefault(int(param_id), {}).update(values)
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def save_checkpoint(folder: str | os.PathLike[str], *, model: dict[str, torch.Tensor],
                    best: dict[str, torch.Tensor], optimizer: torch.optim.Optimizer,
                    progress: dict[str, Any]) -> None:
    """Atomically replace the checkpoint in ``folder`` (model, best model, optimizer, progress)."""
    opt_tensors, opt_meta = optimizer_tensors(optimizer)
    with atomic_directory(Path(folder)) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in model.items()}, tmp / "model.safetensors")
        save_file({k: v.detach().cpu().contiguous() for k, v in best.items()}, tmp / "best.safetensors")
        save_file(opt_tensors, tmp / "optimizer.safetensors")
        (tmp / "progress.json").write_text(json.dumps({**progress, "optimizer": opt_meta}), "utf-8")
        write_manifest(tmp, KIND, {}, files=FILES, version=FORMAT_VERSION)


def load_checkpoint(folder: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The checkpoint in ``folder`` (checksums verified), or ``None`` when there is none."""
    folder = Path(folder)
    if not (folder / MANIFEST).is_file():
        interrupted_swap = any(p.name.endswith(".old") for p in leftovers(folder))
        if interrupted_swap or (folder.is_dir() and any(folder.iterdir())):
            read_manifest(folder, KIND)  # raises, saying what is there and what to do
        return None
    read_manifest(folder, KIND, version=FORMAT_VERSION, require=FILES)
    try:
        progress = json.loads((folder / "progress.json").read_text("utf-8"))
        return {
            "model": load_file(folder / "model.safetensors"),
            "best": load_file(folder / "best.safetensors"),
            "optimizer": load_file(folder / "optimizer.safetensors"),
            "optimizer_meta": progress.pop("optimizer"),
            "progress": progress,
        }
    except (OSError, ValueError, KeyError) as exc:
        raise ArtifactError(f"{folder}: the training checkpoint cannot be read ({exc}).") from exc
