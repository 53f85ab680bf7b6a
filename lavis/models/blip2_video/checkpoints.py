"""Weights in and out of the captioner, translated at the edge.

Sources: a transformers BLIP-2 / InstructBLIP folder (``Salesforce/blip2-opt-2.7b`` layout), a
LAVIS ``.pth`` (see ``lavis_keys.py``), ``eva_vit_g.pth``, a TimeSformer folder, the LLM's own
folder, and the project's own captioner folder (``model.safetensors`` + ``config.yaml`` +
tokenizers). Nothing is downloaded; a missing path names its config key. Every load reports
unexpected keys; a path whose tensors match none of the model's, a tensor of another shape, and a
part given a path that does not fill it are errors (``CheckpointError``), and a part given no path
stays random only when the config sets ``random_init``.
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

from lavis.common.checkpoint import CheckpointError
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
    """Keys under one of the ``(old, new)`` prefixes, renamed; other keys are left out."""
    out = {}
    for key, value in state.items():
        for old, new in prefixes:
            if key.startswith(old):
                out[new + key[len(old):]] = value
                break
    return out


@dataclasses.dataclass
class SourceWeights:
    """The tensors of one configured path, in this project's key names."""

    path: str
    config_key: str  # the config key that names ``path``, for messages
    expects: str  # what the path should be, for messages
    tensors: dict[str, torch.Tensor]
    file_keys: list[str]  # the file's own key names (translation may leave some out)
    part: str | None = None  # the part the path is given for (None: whatever it holds)

    def where(self) -> str:
        return f"{self.path} (set by '{self.config_key}')"


def part_of(key: str) -> str:
    return key.split(".", 1)[0]


def assign(model: nn.Module, weights: SourceWeights, fresh: tuple[str, ...] = ()) -> set[str]:
    """Copy ``weights`` into ``model``; returns the model keys now holding loaded weights.

    A source that matches no key of the model, or a tensor of another shape, is an error: both
    mean the path points at something else than the configuration describes. Only keys under
    ``fresh`` (new in this configuration, trained from scratch) may differ in shape; they are skipped.
    """
    own = model.state_dict()
    usable = {k: v for k, v in weights.tensors.items() if k in own}
    if not usable:
        raise CheckpointError(_matches_nothing(weights))
    wrong = {k: (tuple(v.shape), tuple(own[k].shape)) for k, v in usable.items() if v.shape != own[k].shape}
    refit = {k: shapes for k, shapes in wrong.items() if not k.startswith(fresh)}
    if refit:
        shown = list(refit.items())[:3]
        detail = "; ".join(f"{k}: {list(a)} in the file, {list(b)} in the model" for k, (a, b) in shown)
        raise CheckpointError(
            f"{weights.where()}: {_count(len(refit), 'tensor')} of another shape than this model's ({detail}"
            f"{' ...' if len(refit) > 3 else ''}); the weights were saved for other sizes: configure the model "
            f"as they were trained, or point '{weights.config_key}' at weights of this configuration"
        )
    usable = {k: v for k, v in usable.items() if k not in wrong}
    model.load_state_dict(usable, strict=False)
    unexpected = sorted(k for k in weights.tensors if k not in own)
    if unexpected:
        logger.warning("%s: %d unexpected keys ignored: %s", weights.path, len(unexpected), _preview(unexpected))
    if wrong:
        logger.info("%s: %d tensors new in this configuration keep their fresh initialisation: %s",
                    weights.path, len(wrong), _preview(sorted(wrong)))
    unused = len(weights.file_keys) - len(weights.tensors)
    logger.info("loaded %d tensors from %s%s", len(usable), weights.path,
                f" ({unused} of its {len(weights.file_keys)} keys have no counterpart here)" if unused else "")
    return set(usable) | _tied_to(model, set(usable))


def _matches_nothing(weights: SourceWeights) -> str:
    if not weights.file_keys:
        return f"{weights.where()} holds no tensors; it should be {weights.expects}"
    return (
        f"{weights.where()}: none of its {_count(len(weights.file_keys), 'tensor')} matches a weight of "
        f"{'the model' if weights.part is None else 'the ' + weights.part + ' part'} (e.g. its key "
        f"'{weights.file_keys[0]}'); it should be {weights.expects}"
    )


def _tied_to(model: nn.Module, loaded: set[str]) -> set[str]:
    """Keys sharing storage with a loaded key (e.g. an LLM's tied output embedding)."""
    by_ptr: dict[int, list[str]] = {}
    for key, tensor in model.state_dict(keep_vars=True).items():
        by_ptr.setdefault(tensor.data_ptr(), []).append(key)
    return {k for keys in by_ptr.values() if loaded & set(keys) for k in keys}


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _preview(keys: list[str], n: int = 6) -> str:
    return ", ".join(keys[:n]) + (" ..." if len(keys) > n else "")


def load_initial_weights(model: nn.Module, pretrained: str | None, vision_weights: str | None, random_init: bool) -> None:
    """Fill the captioner from its configured sources; refuse silent random weights.

    Every part a path was given for (``vision_weights``: the vision encoder; ``language.path``:
    the LLM; ``pretrained``: each part it holds tensors of) must load completely, whatever
    ``random_init`` says; ``random_init`` only lets parts that no path names stay random.
    """
    fresh = model.new_parameter_prefixes()
    loaded: set[str] = set()
    fed: dict[str, list[SourceWeights]] = {}  # part -> the sources given for it
    if pretrained is not None:
        _take(model, read_pretrained(pretrained, model), fresh, loaded, fed)
    if vision_weights is not None:
        _take(model, read_vision_weights(vision_weights, model.vision.cfg), fresh, loaded, fed)
    lm_path = model.language.cfg.path
    if lm_path is not None and "language" not in fed:  # a BLIP-2 folder may hold the LLM already
        _take(model, read_language_folder(lm_path), fresh, loaded, fed)
    own = list(model.state_dict())
    untrained = [k for k in own if k not in loaded and k.startswith(fresh)]
    if untrained:
        logger.info("%d tensors are new in this configuration and start untrained: %s",
                    len(untrained), _preview(untrained))
    missing = [k for k in own if k not in loaded and k not in untrained]
    _check_complete(missing, fed)
    if not missing:
        return
    parts = sorted({part_of(k) for k in missing})
    if random_init:
        logger.warning("random initial weights for %d tensors (parts: %s, for which no path was given), as "
                       "model.random_init asks", len(missing), ", ".join(parts))
        return
    raise FileNotFoundError(
        f"no weights for {len(missing)} tensors of the parts {', '.join(parts)} ({_preview(missing)}). "
        "Point model.pretrained at a BLIP-2 folder or LAVIS .pth, model.vision_weights at the vision "
        "encoder's weights and model.language.path at the LLM folder, or set model.random_init=true "
        f"to train from scratch. {HOW_TO_GET}"
    )


def _take(model: nn.Module, weights: SourceWeights, fresh: tuple[str, ...], loaded: set[str],
          fed: dict[str, list[SourceWeights]]) -> None:
    """Assign one source; note the keys it filled and the parts it was given for."""
    keys = assign(model, weights, fresh)
    loaded |= keys
    for part in {part_of(k) for k in keys} | ({weights.part} if weights.part else set()):
        fed.setdefault(part, []).append(weights)


def _check_complete(missing: list[str], fed: dict[str, list[SourceWeights]]) -> None:
    """A part some path was given for may not be left partly (or wholly) random."""
    gaps = {}
    for key in missing:
        if part_of(key) in fed:
            gaps.setdefault(part_of(key), []).append(key)
    if not gaps:
        return
    detail = "; ".join(
        f"{_count(len(keys), 'tensor')} of the {part} part not in {' or '.join(w.where() for w in fed[part])} "
        f"(e.g. {keys[0]})" for part, keys in sorted(gaps.items())
    )
    raise CheckpointError(
        f"{detail}. Every tensor of a part given a path must load (model.random_init only covers parts given "
        "no path): give the rest with another path (model.vision_weights, model.language.path) or point this "
        "one at complete weights of this configuration"
    )


def read_pretrained(path: str, model: nn.Module) -> SourceWeights:
    """A BLIP-2 checkpoint (transformers folder or LAVIS .pth) in this project's key names."""
    source = Path(path)
    expects = "a transformers BLIP-2 / InstructBLIP folder or a LAVIS BLIP-2 .pth"
    if source.is_dir():
        if blip2_folder_config(path) is None:
            raise CheckpointError(f"{path} (model.pretrained) is not a transformers BLIP-2 or InstructBLIP folder")
        state = read_folder(path)
        return SourceWeights(path, "model.pretrained", expects, rename(state, HF_PREFIXES), list(state))
    if source.is_file():
        checkpoint = torch.load(source, map_location="cpu", weights_only=True)
        state = checkpoint.get("model", checkpoint)
        tensors = lavis_to_project(state, model.vision.cfg.num_layers, model.qformer.cfg.instruction_aware)
        return SourceWeights(path, "model.pretrained", expects, tensors, list(state))
    raise FileNotFoundError(f"{path} does not exist (set by 'model.pretrained'); {HOW_TO_GET}")


def read_language_folder(path: str) -> SourceWeights:
    """The LLM's own transformers folder."""
    state = read_folder(require_dir(path, "model.language.path"))
    return SourceWeights(path, "model.language.path", "the language model's transformers folder",
                         {f"language.model.{k}": v for k, v in state.items()}, list(state), part="language")


VISION_FOLDERS = {  # per encoder: what its folder holds, and the prefix of a model with a head on top
    "eva_vit_g": ("a transformers Blip2VisionModel folder or LAVIS's eva_vit_g.pth", None),
    "timesformer": ("a transformers TimesformerModel or TimesformerForVideoClassification folder", "timesformer."),
}


def read_vision_weights(path: str, cfg: Any) -> SourceWeights:
    """TimeSformer: a transformers ``TimesformerModel`` folder, or a ``TimesformerForVideoClassification``
    one (K400; its ``timesformer.`` encoder is read, the classifier left out). EVA ViT: LAVIS's
    ``eva_vit_g.pth``, or a transformers ``Blip2VisionModel`` folder (what
    ``scripts/pretrain_shapes_vision.py`` writes)."""
    source = Path(path)
    expects, head_prefix = VISION_FOLDERS[cfg.arch]
    if source.is_dir():
        _check_vision_folder(source, cfg)
        state = read_folder(path)
        encoder = state
        if head_prefix is not None and any(k.startswith(head_prefix) for k in state):
            encoder = rename(state, ((head_prefix, ""),))
        tensors = {f"vision.model.{k}": v for k, v in encoder.items()}
        return SourceWeights(path, "model.vision_weights", expects, tensors, list(state), part="vision")
    if not source.exists():
        raise FileNotFoundError(f"{path} does not exist (set by 'model.vision_weights'); {HOW_TO_GET}")
    if cfg.arch != "eva_vit_g":
        raise CheckpointError(f"{path} (model.vision_weights) is a file; the {cfg.arch} encoder needs {expects}")
    state = torch.load(source, map_location="cpu", weights_only=True)
    state = state.get("model", state)
    return SourceWeights(path, "model.vision_weights", expects, eva_vit_to_project(state, cfg.num_layers),
                         list(state), part="vision")


def _check_vision_folder(folder: Path, cfg: Any) -> None:
    """A vision folder must have the configured sizes; another number of heads would load
    without a shape error and compute something else."""
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise CheckpointError(f"{folder} (model.vision_weights) has no config.json: not a transformers folder")
    saved = json.loads(config_file.read_text())
    wanted = {"hidden_size": cfg.hidden_size, "num_hidden_layers": cfg.num_layers, "patch_size": cfg.patch_size,
              "image_size": cfg.image_size, "intermediate_size": cfg.intermediate_size,
              "num_attention_heads": cfg.num_heads}
    if cfg.arch == "timesformer":
        wanted["num_frames"] = cfg.num_frames
    differ = {k: (saved.get(k), v) for k, v in wanted.items() if saved.get(k) != v}
    if differ:
        detail = ", ".join(f"{k} {got} (configured {want})" for k, (got, want) in differ.items())
        raise CheckpointError(f"{folder} (model.vision_weights) is another vision encoder: {detail}")


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
        raise CheckpointError(
            f"{weights} does not fit the model: missing {_preview(sorted(missing))}; "
            f"unexpected {_preview(sorted(unexpected))}"
        )
    logger.info("loaded the fine-tuned captioner from %s", directory)
