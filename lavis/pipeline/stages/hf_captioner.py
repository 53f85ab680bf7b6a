"""Captioning with a ``transformers`` vision-language model: ``AutoModelForImageTextToText`` and
its ``AutoProcessor`` from a local folder (LLaVA-Video / LLaVA-OneVision, Qwen2-VL, InternVL,
LLaVA ...), the prompt through the processor's chat template.

``input_mode: video`` hands the frames to the processor as one video (the model's own video
path; ``transformers`` video processors need torchvision), ``images`` as one image per frame
(every multi-image model; works without torchvision). Batches are padded on the left, as
decoder-only generation needs, so a clip's caption does not depend on its batch-mates.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch

from lavis.datasets.video import fit_within
from lavis.models.image_embedders import require_model_dir
from lavis.pipeline.stages.hf_loading import load_for_inference

InputMode = Literal["video", "images"]


class HFCaptioner:
    def __init__(self, path: str | None, prompt: str, input_mode: InputMode, max_side: int | None,
                 generation: dict, trust_remote_code: bool, device: torch.device, tp_mesh: Any = None) -> None:
        from transformers import AutoModelForImageTextToText, AutoProcessor

        folder = require_model_dir(path, "video_caption.path", "llava-hf/LLaVA-Video-7B-Qwen2-hf")
        self.processor = AutoProcessor.from_pretrained(folder, local_files_only=True, trust_remote_code=trust_remote_code)
        if getattr(self.processor, "chat_template", None) is None:
            raise ValueError(f"{folder}: the processor has no chat template; add chat_template.json (the model card has it)")
        self.processor.tokenizer.padding_side = "left"
        self.model = load_for_inference(AutoModelForImageTextToText, folder, device, tp_mesh, trust_remote_code)
        self.prompt, self.input_mode, self.max_side, self.device = prompt, input_mode, max_side, device
        self.generation = generation

    def messages(self, num_frames: int) -> list[dict]:
        visual = [{"type": "video"}] if self.input_mode == "video" else [{"type": "image"}] * num_frames
        return [{"role": "user", "content": [*visual, {"type": "text", "text": self.prompt}]}]

    @torch.no_grad()
    def caption(self, videos: list[np.ndarray]) -> list[str]:
        """One caption per ``(T, H, W, 3)`` uint8 clip."""
        videos = [np.stack([fit_within(f, self.max_side) for f in v]) for v in videos]
        text = self.processor.apply_chat_template([self.messages(len(v)) for v in videos], add_generation_prompt=True,
                                                  tokenize=False)
        visual = {"videos": [list(v) for v in videos]} if self.input_mode == "video" else {
            "images": [frame for v in videos for frame in v]}
        inputs = self.processor(text=text, **visual, return_tensors="pt", padding=True).to(self.device)
        out = self.model.generate(**inputs, **self.generation)
        return [t.strip() for t in self.processor.batch_decode(out[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)]
