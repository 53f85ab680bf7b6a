"""What a pipeline stage is: frames (or audio) of one clip in, a few output fields out.

The pipeline decodes each clip once, in worker processes, asking every stage which frames it
needs (``select_frames``), and hands each stage its own frames in a ``Clip``. A stage returns one
dict of fields per clip; a clip the stage cannot handle gets ``{"error": reason}`` from that
stage alone, and the other stages' fields are kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar

import numpy as np
import torch

from lavis.common.registry import registry
from lavis.common.schema import Component
from lavis.datasets.video import VideoInfo, build_frame_sampler

STAGE_SPEC = Annotated[dict[str, Any], Component("stage")]  # {"name": ..., **constructor kwargs}


@dataclass
class Clip:
    """One clip as the stages see it."""

    id: str  # stable row id: outputs merge by it, never by position
    video_id: str
    start: float | None
    end: float | None
    info: VideoInfo  # of the decoded clip (the member file itself)
    frames: dict[str, np.ndarray] = field(default_factory=dict)  # stage name -> (T, H, W, 3) uint8 RGB
    frame_times: dict[str, list[float]] = field(default_factory=dict)  # stage name -> seconds
    audio: np.ndarray | None = None  # mono float32 in [-1, 1], when a stage asked for audio
    sample_rate: int | None = None
    fields: dict[str, Any] = field(default_factory=dict)  # earlier stages' outputs (tagging reads captions)


class Stage:
    """Base class of registered stages (``registry.register("stage", name)``).

    A stage's config section maps one-to-one onto its constructor. ``needs_audio`` asks the
    decoder for the clip's audio; ``select_frames`` for frame indices (empty: no frames).
    """

    name: ClassVar[str]
    needs_audio: ClassVar[bool] = False

    def select_frames(self, info: VideoInfo) -> list[int]:
        return []

    def setup(self, device: torch.device, tp_mesh: Any = None) -> None:
        """Load models (once per process, after the decoder workers have started); ``tp_mesh``:
        the rank's tensor-parallel group, for stages whose models can be split across it."""

    def process(self, clips: list[Clip]) -> list[dict[str, Any]]:
        raise NotImplementedError


def uniform_indices(info: VideoInfo, count: int) -> list[int]:
    """The eval processors' ``uniform`` frames (the middle of each of ``count`` parts), each once."""
    return sorted(set(build_frame_sampler("uniform")(info, count, None)))


def build_stage(spec: dict[str, Any]) -> Stage:
    kwargs = {k: v for k, v in spec.items() if k != "name"}
    return registry.get("stage", spec["name"])(**kwargs)
