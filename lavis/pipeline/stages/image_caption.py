"""``image_caption``: a description of one key frame by a ``transformers`` image-text model.

The same loading and prompting as ``video_caption``'s ``hf`` backend (``hf_captioner.py``), on
the frame at the clip's start, middle or end. InternVL, LLaVA, Qwen2-VL ... in their
``transformers`` format (``AutoModelForImageTextToText``).
"""

from __future__ import annotations

from typing import Any, Literal

import torch

from lavis.common.registry import registry
from lavis.datasets.video import VideoInfo
from lavis.pipeline.stages.base import Clip, Stage
from lavis.pipeline.stages.hf_captioner import HFCaptioner


@registry.register("stage", "image_caption")
class ImageCaptionStage(Stage):
    name = "image_caption"

    def __init__(self, path: str | None = None, prompt: str = "Describe this image in detail.",
                 key_frame: Literal["first", "middle", "last"] = "middle", max_side: int | None = None,
                 max_new_tokens: int = 256, num_beams: int = 1, trust_remote_code: bool = False,
                 output_key: str = "image_caption") -> None:
        self.key_frame, self.output_key = key_frame, output_key
        self.hf = dict(path=path, prompt=prompt, input_mode="images", max_side=max_side,
                       trust_remote_code=trust_remote_code,
                       generation=dict(max_new_tokens=max_new_tokens, num_beams=num_beams, do_sample=False))

    def select_frames(self, info: VideoInfo) -> list[int]:
        last = info.num_frames - 1
        return [{"first": 0, "middle": last // 2, "last": last}[self.key_frame]]

    def setup(self, device: torch.device, tp_mesh: Any = None) -> None:
        self.captioner = HFCaptioner(**self.hf, device=device, tp_mesh=tp_mesh)

    def process(self, clips: list[Clip]) -> list[dict[str, Any]]:
        captions = self.captioner.caption([c.frames[self.name] for c in clips])
        return [{self.output_key: caption} for caption in captions]
