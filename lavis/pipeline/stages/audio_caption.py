"""``audio_caption``: what a clip sounds like, from a ``transformers`` audio-text model.

An audio-language model (e.g. Qwen2-Audio-7B-Instruct) and its processor from a local folder,
prompted through the processor's chat template with the clip's audio (mono, resampled by the
decoder, at most ``max_seconds`` from the start). A clip without an audio stream is not an
error: it gets ``has_audio: false`` and no caption.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from lavis.common.registry import registry
from lavis.models.image_embedders import require_model_dir
from lavis.pipeline.stages.base import Clip, Stage
from lavis.pipeline.stages.hf_loading import load_for_inference


@registry.register("stage", "audio_caption")
class AudioCaptionStage(Stage):
    name = "audio_caption"
    needs_audio = True

    def __init__(self, path: str | None = None, prompt: str = "Describe the sounds in this audio clip.",
                 max_seconds: float = 30.0, max_new_tokens: int = 128, num_beams: int = 1,
                 trust_remote_code: bool = False, output_key: str = "audio_caption") -> None:
        self.path, self.prompt, self.max_seconds, self.output_key = path, prompt, max_seconds, output_key
        self.generation = dict(max_new_tokens=max_new_tokens, num_beams=num_beams, do_sample=False)
        self.trust_remote_code = trust_remote_code

    def setup(self, device: torch.device, tp_mesh: Any = None) -> None:
        import transformers
        from transformers import AutoProcessor

        folder = require_model_dir(self.path, "audio_caption.path", "Qwen/Qwen2-Audio-7B-Instruct")
        self.processor = AutoProcessor.from_pretrained(folder, local_files_only=True, trust_remote_code=self.trust_remote_code)
        self.processor.tokenizer.padding_side = "left"
        # transformers 5 files audio-language models under AutoModelForMultimodalLM, 4.x under Seq2SeqLM
        auto = getattr(transformers, "AutoModelForMultimodalLM", None) or transformers.AutoModelForSeq2SeqLM
        self.model = load_for_inference(auto, folder, device, tp_mesh, self.trust_remote_code)
        self.rate = self.processor.feature_extractor.sampling_rate
        self.device = device

    def prepare(self, clip: Clip) -> np.ndarray:
        """The clip's audio at the model's rate (linear resampling if the decoder's differs), cut."""
        audio = clip.audio
        if clip.sample_rate != self.rate:
            n = round(len(audio) * self.rate / clip.sample_rate)
            audio = np.interp(np.linspace(0, len(audio) - 1, n), np.arange(len(audio)), audio).astype(np.float32)
        return audio[: int(self.max_seconds * self.rate)]

    @torch.no_grad()
    def process(self, clips: list[Clip]) -> list[dict[str, Any]]:
        heard = [c for c in clips if c.audio is not None and len(c.audio)]
        captions: dict[str, str] = {}
        if heard:
            message = [{"role": "user", "content": [{"type": "audio"}, {"type": "text", "text": self.prompt}]}]
            text = self.processor.apply_chat_template([message] * len(heard), add_generation_prompt=True, tokenize=False)
            inputs = self.processor(text=text, audio=[self.prepare(c) for c in heard], sampling_rate=self.rate,
                                    return_tensors="pt", padding=True).to(self.device)
            out = self.model.generate(**inputs, **self.generation)
            decoded = self.processor.batch_decode(out[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
            captions = {c.id: t.strip() for c, t in zip(heard, decoded)}
        return [{"has_audio": c.audio is not None, self.output_key: captions.get(c.id)} for c in clips]
