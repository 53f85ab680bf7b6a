"""Weights in and out of the captioner, translated at the edge.

Sources: a transformers BLIP-2 / InstructBLIP folder (``Salesforce/blip2-opt-2.7b`` layout), a
LAVIS ``.pth`` (see ``lavis_keys.py``), ``eva_vit_g.pth``, a TimeSformer folder, the LLM's own
folder, and the project's own captioner folder (``model.safetensors`` + ``config.yaml`` +
tokenizers). Nothing is downloaded; a missing path names its config key. Every load reports
missing and unexpected keys, and a part left without weights is an error unless the config sets
``random_init``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors.torch import load_file, load_model, save_model
from torch import nn
from transformers import AutoConfig

from lavis.models.blip2_video.lavis_keys import eva_vit_to_project, lavis_to_project

logger = logging.getLogger(__name__)

HF_PREFIXES = (  # transformers BLIP-2 / InstructBLIP -> this project
    ("vision_model.", "vision.model."),
    ("qformer.", "qformer.model."),
    ("query_tokens", "qformer.query_tokens"),
    ("language_projection.", "projection."),
    ("language_model.", "language.model."),
)
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.yaml"
PREPROCESS_FILE = "preprocess.yaml"  # the video processors the weights were trained with
HOW_TO_GET = (
    "download it on a machine with internet access (e.g. `huggingface-cli download "
    "Salesforce/blip2-opt-2.7b --local-dir <path>`) and copy it here"
)


def require_dir(path: str, key: str) -> str:
    if not Path(path).is_dir():
        raise FileNotFoundError(f"{path} does not exist (set by '{key}'); {HOW_TO_GET}")
    return str(path)


def require_exists(path: str, key: str) -> str:
    if not Path(path).exists():
        raise FileNotFoundError(f"{path} does not exist (set by '{key}'); {HOW_TO_GET}")
    return str(path)


def blip2_folder_config(path: str) -> Any | None:
    """The transformers config of a BLIP-2 / InstructBLIP folder, else None."""
    config_file = Path(path) / "config.json"
    if not config_file.is_file():
        return None
    model_type = json.loads(config_file.read_text()).get("model_type")
    if model_type not in ("blip-2", "instructblip"):
        return None
    return AutoConfig.from_pretrained(path, local_files_only=True)


def read_folder(path: str) -> dict[str, torch.Tensor]:
    """All tensors of a transformers folder (safetensors, sharded or not; else pytorch .bin)."""
    folder = Path(path)
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        return {k: v for shard in shards for k, v in load_file(folder / shard).items()}
    if (folder / WEIGHTS_FILE).is_file():
        return load_file(folder / WEIGHTS_FILE)
    bins = sorted(folder.glob("pytorch_model*.bin"))
    if bins:
        return {k: v for b in bins for k, v in torch.load(b, map_location="cpu", weights_only=True).items()}
    raise FileNotFoundError(f"{folder} has no model.safetensors or pytorch_model.bin weights")


def rename(state: dict[str, torch.Tensor], prefixes) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state.items():
        for old, new in prefixes:
            if key.startswith(old):
                out[new + key[len(old):]] = value
                break
    return out


def assign(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> set[str]:
    """Copy matching tensors into ``model``; returns the model keys now holding loaded weights."""
    own = model.state_dict()
    unexpected = sorted(k for k in state if k not in own)
    mismatched = sorted(k for k in state if k in own and state[k].shape != own[k].shape)
    usable = {k: v for k, v in state.items() if k in own and k not in mismatched}
    model.load_state_dict(usable, strict=False)
    if unexpected:
        logger.warning("%s: %d unexpected keys ignored: %s", source, len(unexpected), _preview(unexpected))
    if mismatched:
        logger.warning("%s: %d keys have another shape here, not loaded: %s", source, len(mismatched), _preview(mismatched))
    logger.info("loaded %d tensors from %s", len(usable), source)
    return set(usable) | _tied_to(model, set(usable))


def _tied_to(model: nn.Module, loaded: set[str]) -> set[str]:
    """Keys sharing storage with a loaded key (e.g. an LLM's tied output embedding)."""
    by_ptr: dict[int, list[str]] = {}
    for key, tensor in model.state_dict(keep_vars=True).items():
        by_ptr.setdefault(tensor.data_ptr(), []).append(key)
    return {k for keys in by_ptr.values() if loaded & set(keys) for k in keys}


def _preview(keys: list[str], n: int = 6) -> str:
    return ", ".join(keys[:n]) + (" ..." if len(keys) > n else "")


def load_initial_weights(model: nn.Module, pretrained: str | None, vision_weights: str | None, random_init: bool) -> None:
    """Fill the captioner from its configured sources; refuse silent random weights."""
    loaded: set[str] = set()
    if pretrained is not None:
        loaded |= assign(model, read_pretrained(pretrained, model), pretrained)
    if vision_weights is not None:
        loaded |= assign(model, read_vision_weights(vision_weights, model.vision.cfg), vision_weights)
    lm_path = model.language.cfg.path
    if lm_path is not None and not any(k.startswith("language.") for k in loaded):
        lm_state = {f"language.model.{k}": v for k, v in read_folder(require_dir(lm_path, "model.language.path")).items()}
        loaded |= assign(model, lm_state, lm_path)
    fresh = [k for k in model.state_dict() if k not in loaded and k.startswith(model.new_parameter_prefixes())]
    if fresh:
        logger.info("%d tensors are new in this configuration and start untrained: %s", len(fresh), _preview(fresh))
    missing = [k for k in model.state_dict() if k not in loaded and k not in fresh]
    if not missing:
        return
    parts = sorted({k.split(".")[0] for k in missing})
    if random_init:
        logger.warning("random initial weights for %d tensors (parts: %s), as model.random_init asks",
                       len(missing), ", ".join(parts))
        return
    raise FileNotFoundError(
        f"no weights for {len(missing)} tensors of the parts {', '.join(parts)} ({_preview(missing)}). "
        "Point model.pretrained at a BLIP-2 folder or LAVIS .pth, model.vision_weights at the vision "
        "encoder's weights and model.language.path at the LLM folder, or set model.random_init=true "
        f"to train from scratch. {HOW_TO_GET}"
    )


def read_pretrained(path: str, model: nn.Module) -> dict[str, torch.Tensor]:
    """A BLIP-2 checkpoint (transformers folder or LAVIS .pth) in this project's key names."""
    source = Path(path)
    if source.is_dir():
        if blip2_folder_config(path) is None:
            raise ValueError(f"{path} (model.pretrained) is not a transformers BLIP-2 or InstructBLIP folder")
        return rename(read_folder(path), HF_PREFIXES)
    if source.is_file():
        checkpoint = torch.load(source, map_location="cpu", weights_only=True)
        return lavis_to_project(checkpoint, model.vision.cfg.num_layers, model.qformer.cfg.instruction_aware)
    raise FileNotFoundError(f"{path} does not exist (set by 'model.pretrained'); {HOW_TO_GET}")


def read_vision_weights(path: str, cfg: Any) -> dict[str, torch.Tensor]:
    """TimeSformer: a transformers folder. EVA ViT: LAVIS's ``eva_vit_g.pth``, or a transformers
    ``Blip2VisionModel`` folder (what ``scripts/pretrain_shapes_vision.py`` writes)."""
    source = Path(path)
    if cfg.arch == "timesformer":
        state = read_folder(require_dir(path, "model.vision_weights"))
        return rename(state, (("timesformer.", "vision.model."),))
    if source.is_dir():
        _check_vision_folder(source, cfg)
        return {f"vision.model.{k}": v for k, v in read_folder(path).items()}
    if not source.is_file():
        raise FileNotFoundError(f"{path} does not exist (set by 'model.vision_weights'); {HOW_TO_GET}")
    state = torch.load(source, map_location="cpu", weights_only=True)
    return eva_vit_to_project(state.get("model", state), cfg.num_layers)


def _check_vision_folder(folder: Path, cfg: Any) -> None:
    """A ``Blip2VisionModel`` folder must have the configured sizes; weights of another shape
    would otherwise be skipped and the encoder left partly random."""
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"{folder} (model.vision_weights) has no config.json: not a transformers folder")
    saved = json.loads(config_file.read_text())
    wanted = {"hidden_size": cfg.hidden_size, "num_hidden_layers": cfg.num_layers, "patch_size": cfg.patch_size,
              "image_size": cfg.image_size, "intermediate_size": cfg.intermediate_size}
    differ = {k: (saved.get(k), v) for k, v in wanted.items() if saved.get(k) != v}
    if differ:
        detail = ", ".join(f"{k} {got} (configured {want})" for k, (got, want) in differ.items())
        raise ValueError(f"{folder} (model.vision_weights) is another vision encoder: {detail}")


# ---------------------------------------------------------------------- the project's own format
def save_captioner(model: nn.Module, directory: str, preprocess: dict[str, Any] | None = None) -> None:
    """One folder: ``model.safetensors``, ``config.yaml`` (the model section), tokenizers, and
    ``preprocess.yaml`` (``{"vis_processor": {"eval": {...}}, ...}``) when given."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    save_model(model, str(out / WEIGHTS_FILE))
    model.language.tokenizer.save_pretrained(out / "tokenizer")
    if model.qformer_tokenizer is not None:
        model.qformer_tokenizer.save_pretrained(out / "qformer_tokenizer")
    language = dataclasses.asdict(model.language.cfg)
    language.update(path=None, tokenizer="tokenizer", config=_lm_config_dict(model))
    qformer = dataclasses.asdict(model.qformer.cfg)
    if model.qformer_tokenizer is not None:
        qformer["tokenizer"] = "qformer_tokenizer"
    config = {
        "arch": model.registry_name, "vision": dataclasses.asdict(model.vision.cfg), "qformer": qformer,
        "language": language, "fusion": model.fusion,
    }
    (out / CONFIG_FILE).write_text(yaml.safe_dump(config, sort_keys=False))
    if preprocess is not None:
        (out / PREPROCESS_FILE).write_text(yaml.safe_dump(preprocess, sort_keys=False))


def _lm_config_dict(model: nn.Module) -> dict[str, Any]:
    lm = model.language.model
    base = lm.get_base_model() if hasattr(lm, "get_base_model") else lm
    return base.config.to_diff_dict() | {"model_type": base.config.model_type}


def read_captioner_config(directory: str) -> dict[str, Any]:
    """The model section saved beside the weights, with its folder-relative paths resolved."""
    folder = Path(require_dir(directory, "model.finetuned"))
    config = yaml.safe_load((folder / CONFIG_FILE).read_text())
    for section in ("language", "qformer"):
        tokenizer = config[section].get("tokenizer")
        if tokenizer is not None and not Path(tokenizer).is_absolute():
            config[section]["tokenizer"] = str(folder / tokenizer)
    return config


def read_preprocess(directory: str) -> dict[str, Any] | None:
    """The processors saved beside the weights, or None for a folder saved without them."""
    path = Path(directory) / PREPROCESS_FILE
    return yaml.safe_load(path.read_text()) if path.is_file() else None


def load_finetuned(model: nn.Module, directory: str) -> None:
    weights = Path(directory) / WEIGHTS_FILE
    if not weights.is_file():
        raise FileNotFoundError(f"{weights} does not exist (set by 'model.finetuned')")
    missing, unexpected = load_model(model, str(weights), strict=False)
    if missing or unexpected:
        raise RuntimeError(
            f"{weights} does not fit the model: missing {_preview(sorted(missing))}; "
            f"unexpected {_preview(sorted(unexpected))}"
        )
    logger.info("loaded the fine-tuned captioner from %s", directory)
