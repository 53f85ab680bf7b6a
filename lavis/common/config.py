"""Layered, typed run configuration.

Layers, later wins:
  1. the model's default YAML for its ``model_type``   (``configs/models/...``)
  2. each dataset builder's default YAML               (``configs/datasets/...``)
  3. the run YAML given with ``--cfg-path``
  4. ``--options key=value ...`` from the command line

``model.model_type`` (and ``datasets.<name>.type``) are read from layers 3-4 *before* the
defaults are chosen, so a type given on the command line selects its own default file.
The merged config is then checked against typed schemas: ``RunConfig`` plus the task's
constructor for ``run``, the model class's constructor for ``model``, each builder's
constructor for ``datasets.<name>``. Errors name the file, the dotted key and the closest key.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from lavis.common.registry import did_you_mean, registry
from lavis.common.schema import ConfigError, Field, ProcessorSpec, check_section, convert, fields_of

REPO_ROOT = Path(__file__).resolve().parents[2]
SECTIONS = ("model", "datasets", "run", "preprocess")
MODEL_KEYS = ("arch", "model_type")
DATASET_KEYS = ("type",)


def config_root() -> Path:
    """Where the default model/dataset YAMLs live (``configs/`` in the repository)."""
    root = Path(os.environ.get("LAVIS_CONFIG_ROOT", REPO_ROOT / "configs"))
    if not root.is_dir():
        raise ConfigError(
            f"default config folder {root} not found; install the repository with "
            "'pip install -e .' or set LAVIS_CONFIG_ROOT to its configs/ folder"
        )
    return root


def data_root() -> Path:
    """Datasets live under ``$LAVIS_DATA_ROOT`` (default: ``data`` in the working directory)."""
    return Path(os.environ.get("LAVIS_DATA_ROOT", "data")).expanduser()


def cache_root() -> Path:
    """Model weights live under ``$LAVIS_CACHE_ROOT`` (default: ``~/.cache/lavis``)."""
    return Path(os.environ.get("LAVIS_CACHE_ROOT", "~/.cache/lavis")).expanduser()


def _register_resolvers() -> None:
    # ${data_root:msrvtt} -> $LAVIS_DATA_ROOT/msrvtt; ${cache_root:opt-2.7b}, ${lavis_root:projects} likewise.
    def data(sub: str = "") -> str:
        return str(data_root() / sub)

    def cache(sub: str = "") -> str:
        return str(cache_root() / sub)

    def package(sub: str = "") -> str:  # files shipped inside the package (e.g. a tokenizer)
        return str(REPO_ROOT / "lavis" / sub)

    OmegaConf.register_resolver("data_root", data, replace=True)
    OmegaConf.register_resolver("cache_root", cache, replace=True)
    OmegaConf.register_resolver("lavis_root", package, replace=True)


_register_resolvers()


@dataclass
class RunConfig:
    """The ``run`` section: everything the launcher and runner need (task keys come on top)."""

    task: str
    runner: str = "runner_step"
    seed: int = 42
    output_dir: str = "output"
    job_id: str | None = None
    custom_imports: list[str] = field(default_factory=list)

    # distributed
    device: str = "auto"
    dist_backend: str | None = None
    dist_timeout_minutes: float = 30.0
    wrapper: Literal["ddp", "fsdp", "none"] = "ddp"
    find_unused_parameters: bool = False

    # data
    train_splits: list[str] = field(default_factory=lambda: ["train"])
    valid_splits: list[str] = field(default_factory=list)
    test_splits: list[str] = field(default_factory=list)
    batch_size_train: int = 8
    batch_size_eval: int = 8
    num_workers: int = 2

    # optimisation (steps are optimiser steps; one step = accum_grad_iters micro-batches)
    max_steps: int | None = None
    max_epochs: float | None = None
    accum_grad_iters: int = 1
    max_grad_norm: float | None = 1.0
    init_lr: float = 1e-4
    min_lr: float = 0.0
    warmup_lr: float = 0.0
    warmup_steps: int = 0
    lr_sched: str = "linear_warmup_cosine_lr"
    weight_decay: float = 0.05
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    amp: bool = True
    amp_dtype: Literal["bfloat16", "float16"] = "bfloat16"

    # validation, checkpoints, logging
    val_freq: int | None = None
    best_metric: str = "agg_metrics"
    best_split: str | None = None
    best_mode: Literal["max", "min"] = "max"
    save_freq: int | None = None
    keep_last_checkpoints: int = 2
    log_freq: int = 10
    resume_ckpt_path: str | None = None
    checkpoint: str | None = None
    evaluate: bool = False
    save_pretrained: bool = False  # also write the best weights as a model.save_pretrained folder


@dataclass
class PreprocessConfig:
    """A model's default processors (``load_model_and_preprocess``), as in LAVIS's model YAMLs."""

    vis_processor: dict[str, ProcessorSpec] = field(default_factory=dict)
    text_processor: dict[str, ProcessorSpec] = field(default_factory=dict)


@dataclass
class Layer:
    name: str  # a file path, or "--options"
    cfg: DictConfig


@dataclass
class Config:
    """A validated, merged config: typed ``run`` plus the kwargs of every component."""

    run: RunConfig
    task: dict[str, Any]
    model: dict[str, Any]
    datasets: dict[str, dict[str, Any]]
    preprocess: PreprocessConfig
    merged: DictConfig
    layers: list[str]

    def to_yaml(self) -> str:
        return OmegaConf.to_yaml(self.merged)

    def model_kwargs(self) -> dict[str, Any]:
        return {k: v for k, v in self.model.items() if k not in MODEL_KEYS}


def load_config(cfg_path: str | os.PathLike[str] | None, options: list[str] | None = None) -> Config:
    """Load, layer and validate a run config (``train.py --cfg-path X --options ...``)."""
    user_layers = []
    if cfg_path is not None:
        user_layers.append(Layer(str(cfg_path), load_yaml(Path(cfg_path))))
    if options:
        user_layers.append(Layer("--options", _parse_options(options)))
    return build_config(user_layers)


def build_config(user_layers: list[Layer]) -> Config:
    """Add the component defaults below ``user_layers`` (run file, options), then validate."""
    user = OmegaConf.merge(*(layer.cfg for layer in user_layers)) if user_layers else OmegaConf.create()
    _import_custom_modules(OmegaConf.select(user, "run.custom_imports", default=None) or [])

    defaults: list[Layer] = []
    arch = OmegaConf.select(user, "model.arch", default=None)
    if arch is not None:
        model_cls = registry.get("model", arch)
        model_type = OmegaConf.select(user, "model.model_type", default=None)
        model_type = model_type or getattr(model_cls, "default_model_type", None)
        path = _default_path(model_cls, model_type, f"model '{arch}'", "model.model_type")
        if path is not None:
            defaults.append(Layer(str(path), load_yaml(path)))
    for name in OmegaConf.select(user, "datasets", default=None) or {}:
        builder_cls = registry.get("builder", name)
        dtype = OmegaConf.select(user, f"datasets.{name}.type", default=None) or "default"
        path = _default_path(builder_cls, dtype, f"dataset '{name}'", f"datasets.{name}.type")
        if path is not None:
            defaults.append(Layer(str(path), load_yaml(path)))

    layers = defaults + user_layers
    merged = OmegaConf.merge(*(layer.cfg for layer in layers)) if layers else OmegaConf.create()
    where = _locator(layers)
    try:
        container = OmegaConf.to_container(merged, resolve=True)
    except OmegaConfBaseException as err:
        raise ConfigError(f"cannot resolve config value: {err}") from err
    return _validate(container, OmegaConf.create(container), [l.name for l in layers], where)


def _validate(container: dict, merged: DictConfig, layer_names: list[str], where) -> Config:
    for key in container:
        if key not in SECTIONS:
            raise ConfigError(
                f"{where(key)}unknown top-level section '{key}' (expected: {', '.join(SECTIONS)})"
            )
    run_values = dict(container.get("run") or {})
    if "task" not in run_values:
        raise ConfigError("missing required key 'run.task' (the registered task to run)")
    task_cls = registry.get("task", run_values["task"])
    run_fields = fields_of(RunConfig)
    task_fields = fields_of(task_cls)
    clash = set(run_fields) & set(task_fields)
    if clash:
        raise ConfigError(f"task '{run_values['task']}' reuses run keys {sorted(clash)}")
    checked = check_section(run_values, {**run_fields, **task_fields}, "run", where)
    run = RunConfig(**{k: v for k, v in checked.items() if k in run_fields})
    task = {k: v for k, v in checked.items() if k in task_fields}

    model = _check_model(container.get("model") or {}, where)
    datasets = _check_datasets(container.get("datasets") or {}, where)
    preprocess = convert(container.get("preprocess") or {}, PreprocessConfig, "preprocess", where)
    return Config(run=run, task=task, model=model, datasets=datasets, preprocess=preprocess,
                  merged=merged, layers=layer_names)


def _check_model(model: dict, where) -> dict[str, Any]:
    if not model:
        return {}
    if "arch" not in model:
        raise ConfigError(f"{where('model')}missing required key 'model.arch' (the registered model name)")
    schema = {**fields_of(registry.get("model", model["arch"])), **_reserved(MODEL_KEYS)}
    return check_section(model, schema, "model", where)


def _check_datasets(datasets: dict, where) -> dict[str, dict[str, Any]]:
    """Each builder's section, checked; the ``type`` key (which picked the default file) dropped."""
    out = {}
    for name, section in datasets.items():
        schema = {**fields_of(registry.get("builder", name)), **_reserved(DATASET_KEYS)}
        values = check_section(section or {}, schema, f"datasets.{name}", where)
        values.pop("type", None)
        out[name] = values
    return out


def _reserved(names: tuple[str, ...]) -> dict[str, Field]:
    return {n: Field(n, str | None, None) for n in names}


def _default_path(cls: type, type_name: str | None, what: str, key: str) -> Path | None:
    """The default YAML a component declares for ``type_name`` (``DEFAULT_CONFIGS``)."""
    table: dict[str, str] = getattr(cls, "DEFAULT_CONFIGS", {}) or {}
    if not table:
        return None
    if type_name not in table:
        raise ConfigError(
            f"{what} has no type {type_name!r} (set by '{key}'){did_you_mean(type_name, table)}; "
            f"available: {', '.join(sorted(table))}"
        )
    path = Path(table[type_name])
    return path if path.is_absolute() else config_root() / path


def load_yaml(path: Path) -> DictConfig:
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        cfg = OmegaConf.load(path)  # OmegaConf parses with a yaml SafeLoader subclass
    except (OmegaConfBaseException, ValueError, yaml.YAMLError) as err:
        raise ConfigError(f"{path}: cannot parse YAML: {err}") from err
    if not isinstance(cfg, DictConfig):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return cfg


def _parse_options(options: list[str]) -> DictConfig:
    bad = [o for o in options if "=" not in o]
    if bad:
        raise ConfigError(f"--options expects key=value pairs, got {bad}")
    try:
        return OmegaConf.from_dotlist(list(options))
    except OmegaConfBaseException as err:
        raise ConfigError(f"--options: {err}") from err


def _import_custom_modules(modules: list[str]) -> None:
    """``run.custom_imports``: modules that register extra components (as in mmengine)."""
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as err:
            raise ConfigError(f"run.custom_imports: cannot import {module!r}: {err}") from err


def _locator(layers: list[Layer]):
    """Returns ``where(dotted_key) -> 'file: '`` naming the last layer that sets the key."""

    def where(dotted: str) -> str:
        key = dotted.split("[", 1)[0]
        for layer in reversed(layers):
            if OmegaConf.select(layer.cfg, key, default=_MISSING) is not _MISSING:
                return f"{layer.name}: "
        return ""

    return where


_MISSING = object()



def check_file(path: str | os.PathLike[str]) -> None:
    """Validate one shipped YAML: a run or pipeline file fully, a default file section by section."""
    cfg = load_yaml(Path(path))
    if "run" in cfg:
        load_config(path)
        return
    if "pipeline" in cfg:
        from lavis.pipeline.config import load_pipeline_config  # the pipeline builds on this module

        load_pipeline_config(path)
        return
    container = OmegaConf.to_container(cfg, resolve=True)
    where = _locator([Layer(str(path), cfg)])
    for key in container:
        if key not in ("model", "datasets", "preprocess"):
            raise ConfigError(f"{path}: unexpected top-level section '{key}' in a default config")
    _check_model(container.get("model") or {}, where)
    convert(container.get("preprocess") or {}, PreprocessConfig, "preprocess", where)
    _check_datasets(container.get("datasets") or {}, where)


def model_config(
    arch: str, model_type: str | None = None, overrides: dict[str, Any] | None = None
) -> tuple[dict[str, Any], PreprocessConfig]:
    """A model's validated section (default YAML for its type < ``overrides``) and processors."""
    user = Layer("overrides", OmegaConf.create({"model": {"arch": arch, "model_type": model_type, **(overrides or {})}}))
    model_cls = registry.get("model", arch)
    model_type = model_type or getattr(model_cls, "default_model_type", None)
    path = _default_path(model_cls, model_type, f"model '{arch}'", "model_type")
    layers = ([Layer(str(path), load_yaml(path))] if path is not None else []) + [user]
    merged = OmegaConf.merge(*(layer.cfg for layer in layers))
    container = OmegaConf.to_container(merged, resolve=True)
    container["model"]["model_type"] = model_type
    where = _locator(layers)
    model = _check_model(container["model"], where)
    preprocess = convert(container.get("preprocess") or {}, PreprocessConfig, "preprocess", where)
    return model, preprocess
