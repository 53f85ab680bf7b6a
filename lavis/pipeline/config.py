"""The pipeline YAML: which stages run, with what settings; checked like every other config.

    pipeline:
      stages:
        - {name: camera_motion, threshold: 0.2}
        - {name: video_caption, checkpoint: demo, num_beams: 3}
      device: auto
      decode_timeout: 60

Each stage's keys are its constructor's parameters (unknown keys are errors naming the closest
one). ``config_hash`` fingerprints what decides the outputs, so a rerun into the same output
folder with other settings is refused instead of mixing two runs' rows.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from lavis.common.config import load_yaml
from lavis.common.schema import ConfigError, convert
from lavis.pipeline.stages import register_stages
from lavis.pipeline.stages.base import STAGE_SPEC


@dataclass
class PipelineConfig:
    stages: list[STAGE_SPEC]
    device: str = "auto"
    decode_timeout: float = 60.0  # seconds per clip; a hung decoder becomes that clip's error
    tolerance: float = 0.01  # seconds, matching archive member names to CSV rows
    rows_per_shard: int = 1000  # path-CSV mode: rows per shard (archive mode: one archive each)
    # MiB; archive members above this are not read (the row fails; raise it and rerun with --retry_failed);
    # the members in flight are spooled to the work folder, so it also bounds the disk they take
    max_member_mb: float = 2048.0

    def config_hash(self) -> str:
        """What decides the rows' content (not the device, the timeout or the size limit)."""
        decisive = {"stages": self.stages, "tolerance": self.tolerance, "rows_per_shard": self.rows_per_shard}
        return hashlib.sha256(json.dumps(decisive, sort_keys=True).encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_pipeline_config(path: str | Path, overrides: list[str] | None = None) -> PipelineConfig:
    register_stages()
    cfg = load_yaml(Path(path))
    for option in overrides or []:  # key=value; list items by index: pipeline.stages.1.num_beams=3
        key, sep, value = option.partition("=")
        if not sep:
            raise ConfigError(f"--options expects key=value pairs, got {option!r}")
        try:
            OmegaConf.update(cfg, key, yaml.safe_load(value), merge=True)
        except (OmegaConfBaseException, yaml.YAMLError, IndexError, KeyError) as err:
            raise ConfigError(f"--options {option!r}: {err}") from err
    container = OmegaConf.to_container(cfg, resolve=True)
    if set(container) != {"pipeline"}:
        raise ConfigError(f"{path}: expected one top-level section 'pipeline', got {sorted(container)}")
    config = convert(container["pipeline"], PipelineConfig, "pipeline", lambda key: f"{path}: ")
    if not config.stages:
        raise ConfigError(f"{path}: 'pipeline.stages' is empty")
    if config.max_member_mb <= 0:
        raise ConfigError(f"{path}: 'pipeline.max_member_mb' must be positive, got {config.max_member_mb}")
    names = [s["name"] for s in config.stages]
    if len(set(names)) != len(names):
        raise ConfigError(f"{path}: a stage may run once per pipeline, got {names}")
    return config
