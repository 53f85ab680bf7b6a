"""Checkpoint files: atomic writes, safe loading, trainable weights with a frozen manifest.

A training checkpoint holds only what training changes (trainable parameters and buffers) plus
a manifest (name -> shape) of the frozen parameters, so that a 10 GB frozen backbone is not
copied every save while loading stays strict: every model key must be either in the file or in
the manifest, and nothing else may be in the file. Files are read with
``torch.load(weights_only=True)``; nothing is ever unpickled.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from lavis.common.io import atomic_open

FORMAT = "lavis-checkpoint"
VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, of another format, or does not fit the model."""


def atomic_save(obj: Any, path: str | os.PathLike[str]) -> None:
    """``torch.save`` to a temporary file in the same folder, then rename over ``path``."""
    with atomic_open(path, "wb") as f:
        torch.save(obj, f)


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint written by this project (weights only, on the CPU)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for corrupt or non-weights files
        raise CheckpointError(f"cannot read checkpoint {path}: {err}") from err
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a {FORMAT} file (format={ckpt.get('format')!r})")
    return ckpt


def trainable_state(model: nn.Module, full_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The entries of ``full_state`` that training changes: trainable params and all buffers."""
    frozen = {name for name, p in model.named_parameters() if not p.requires_grad}
    return {k: v.detach().cpu().clone() for k, v in full_state.items() if k not in frozen}


def frozen_manifest(model: nn.Module) -> dict[str, list[int]]:
    return {name: list(p.shape) for name, p in model.named_parameters() if not p.requires_grad}


def check_fits(
    model: nn.Module, state: dict[str, torch.Tensor], manifest: dict[str, list[int]], source: str
) -> None:
    """Strict key check: every model key in ``state`` or in ``manifest``, nothing extra."""
    expected = dict(model.state_dict())
    missing = sorted(set(expected) - set(state) - set(manifest))
    unexpected = sorted(set(state) - set(expected))
    frozen_now = {name for name, p in model.named_parameters() if not p.requires_grad}
    not_frozen = sorted(set(manifest) - frozen_now)
    wrong_shape = sorted(
        k for k, v in state.items() if k in expected and tuple(v.shape) != tuple(expected[k].shape)
    )
    wrong_shape += sorted(
        k for k, s in manifest.items() if k in expected and tuple(s) != tuple(expected[k].shape)
    )
    problems = []
    for label, keys in (
        ("missing", missing),
        ("unexpected", unexpected),
        ("listed as frozen but trainable in this model", not_frozen),
        ("shape differs", wrong_shape),
    ):
        if keys:
            problems.append(f"{label}: {', '.join(keys[:8])}{' ...' if len(keys) > 8 else ''}")
    if problems:
        raise CheckpointError(f"{source} does not fit the model ({'; '.join(problems)})")


def load_trainable(model: nn.Module, ckpt: dict[str, Any], source: str) -> None:
    """Load a checkpoint's trainable weights into an unwrapped model, strictly."""
    check_fits(model, ckpt["model"], ckpt["frozen_manifest"], source)
    model.load_state_dict(ckpt["model"], strict=False)


def capture_rng() -> dict[str, Any]:
    """This process's random states, as weights-only-loadable values."""
    py_version, py_state, py_gauss = random.getstate()
    np_kind, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state = {
        "python": [py_version, list(py_state), py_gauss],
        "numpy": [np_kind, torch.from_numpy(np_keys.astype(np.int64)), np_pos, np_has_gauss, np_gauss],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    version, py_state, gauss = state["python"]
    random.setstate((version, tuple(py_state), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])
