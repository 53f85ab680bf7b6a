"""A captioner and the video processor it was trained with, from whatever the user points at.

``checkpoint`` may be
- ``"demo"``: the tiny ``shapes`` captioner shipped in ``lavis/demo/model`` (the default when
  neither a checkpoint nor a model is named);
- a folder written by ``save_pretrained`` (``config.yaml``, ``model.safetensors``, tokenizers,
  and ``preprocess.yaml``);
- a training checkpoint (``checkpoint_best.pth``): the model is built from the ``config.yaml``
  that ``train.py`` wrote beside it, then its trained weights are loaded;
and with no checkpoint, ``model`` / ``model_type`` build a registered model from its default
YAML, with the weights that YAML points at (local paths only).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

import lavis  # noqa: F401  (registration)
from lavis.common import checkpoint as ckpt_io
from lavis.common.config import load_config, model_config
from lavis.common.registry import RegistryError, registry
from lavis.models import build_model
from lavis.models.blip2_video import checkpoints
from lavis.processors import build_processor
from lavis.processors.video_processors import VideoProcessor

logger = logging.getLogger(__name__)

DEMO_DIR = Path(__file__).resolve().parents[1] / "demo"
DEMO_MODEL = DEMO_DIR / "model"
DEMO_VIDEOS = DEMO_DIR / "videos"


@dataclass
class LoadedCaptioner:
    model: nn.Module
    processor: VideoProcessor
    processor_spec: dict[str, Any]  # how ``processor`` was built (``build_processor``)
    source: str  # what was loaded, for logs and JSON output


class LoadError(Exception):
    """The checkpoint or model a user named cannot be loaded (the message says why and what to do)."""


def load_captioner(
    checkpoint: str | None = None,
    model: str | None = None,
    model_type: str | None = None,
    device: str | torch.device = "cpu",
    processor_overrides: dict[str, Any] | None = None,
) -> LoadedCaptioner:
    """Build the model in eval mode on ``device``; ``processor_overrides`` (e.g. ``n_frms``,
    ``image_size``) replace keys of its eval video processor. Raises ``LoadError``."""
    try:
        return _load(checkpoint, model, model_type, device, processor_overrides)
    except (OSError, ValueError, RegistryError, ckpt_io.CheckpointError) as err:  # ConfigError is a ValueError
        raise LoadError(f"cannot load the captioner: {err}") from err


def _load(
    checkpoint: str | None, model: str | None, model_type: str | None, device: str | torch.device,
    processor_overrides: dict[str, Any] | None,
) -> LoadedCaptioner:
    if checkpoint is None and model is None and model_type is None:
        logger.info("no --checkpoint or --model given: using the built-in demo model (%s)", DEMO_MODEL)
        checkpoint = "demo"
    if checkpoint == "demo":
        checkpoint = str(DEMO_MODEL)
    if checkpoint is None:
        net, spec = _from_registry(model, model_type)
        source = f"{model}:{model_type or 'default'}"
    else:
        path = Path(checkpoint).expanduser()
        if not path.exists():
            raise FileNotFoundError(
                f"checkpoint {path} does not exist; give a folder written by save_pretrained, a "
                "checkpoint_*.pth from train.py, or 'demo'"
            )
        net, spec = _from_pth(path) if path.is_file() else _from_folder(path, model)
        source = str(path)
    spec = {**spec, **(processor_overrides or {}), "name": "video_eval"}  # inference never augments
    net = net.to(device).eval()
    return LoadedCaptioner(net, build_processor(spec), spec, source)


def _from_registry(model: str | None, model_type: str | None) -> tuple[nn.Module, dict[str, Any]]:
    if model is None:
        raise ValueError("--model_type needs --model (a registered model name; see `python -m lavis list model`)")
    net, preprocess = build_model(model, model_type)
    return net, _eval_spec(preprocess.vis_processor, f"model {model}:{model_type}")


def _from_folder(path: Path, model: str | None) -> tuple[nn.Module, dict[str, Any]]:
    arch = checkpoints.read_captioner_config(str(path))["arch"]
    if model is not None and model != arch:
        raise ValueError(f"{path} holds a {arch!r} model, not {model!r}")
    net = registry.get("model", arch).from_pretrained(str(path))
    preprocess = checkpoints.read_preprocess(str(path))
    if preprocess is None:  # saved without processors: the model's defaults at its image size
        _, defaults = model_config(arch)
        spec = _eval_spec(defaults.vis_processor, f"model {arch}")
        return net, {**spec, "image_size": net.vision.cfg.image_size}
    return net, _eval_spec(preprocess.get("vis_processor", {}), str(path / checkpoints.PREPROCESS_FILE))


def _from_pth(path: Path) -> tuple[nn.Module, dict[str, Any]]:
    job_config = path.parent / "config.yaml"
    if not job_config.is_file():
        raise FileNotFoundError(
            f"{path} is a training checkpoint but {job_config} (written by train.py next to it) is "
            "missing, so the model it belongs to is unknown"
        )
    cfg = load_config(job_config)
    net = registry.get("model", cfg.model["arch"]).from_config(cfg.model_kwargs())
    ckpt = ckpt_io.load_checkpoint(path)
    ckpt_io.load_trainable(net, ckpt, str(path))
    logger.info("loaded the trained weights of %s (step %s)", path, ckpt["train_state"]["step"])
    processors = [d.get("vis_processor") or {} for d in cfg.datasets.values()]
    return net, _eval_spec(processors[0] if processors else {}, str(job_config))


def _eval_spec(vis_processor: dict[str, Any], where: str) -> dict[str, Any]:
    if "eval" not in vis_processor:
        raise ValueError(f"{where} names no eval video processor (vis_processor.eval)")
    return dict(vis_processor["eval"])


def export_captioner(checkpoint: str, out_dir: str) -> None:
    """Turn a training checkpoint into a ``save_pretrained`` folder with its eval processor."""
    loaded = load_captioner(checkpoint)
    loaded.model.save_pretrained(out_dir, preprocess={"vis_processor": {"eval": loaded.processor_spec}})
    logger.info("exported %s to %s", checkpoint, out_dir)
