"""The ``scst`` task: self-critical sequence training with a CIDEr-D reward (Rennie et al., 2017).

Each step: generate k candidate captions per video without gradients, reward each with CIDEr-D
against the video's references, subtract a baseline, and minimise -(r - b) * log p(c) / |c|
through the model's forward (so DDP synchronises gradients). The defaults follow the paper's
code (``chunhuizng/mllm-video-captioner``, ``blip2_t5.py``): 5 beams, all kept; reward against
the one caption paired with the sample; document frequencies from the batch; baseline the mean
reward of the k candidates. Tokens are pycocoevalcap's (one PTB tokenizer process per run).
The reward is CIDEr-D of the candidate against its references; the paper's code instead swaps
the two tokenized sides before calling ``Cider`` (``caps_gen, caps_gt = tokenize(caps_gt,
caps_gen)``), scoring the paired caption against the candidate. Alternatives, each a run key:
  ``scst_candidates: sample``   k samples at ``scst_temperature`` instead of beam search;
  ``scst_references: all``      reward against all references of the video;
  ``scst_document_frequency: corpus``  frequencies fixed from the training references (M2);
  ``scst_baseline: mean_others`` the mean of the other k - 1 candidates (leave-one-out);
  ``scst_baseline: greedy``     the reward of the greedy caption (the original SCST);
  ``scst_reward_orientation: paper``  the paper's code's literal, swapped orientation.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from lavis.common.config import Config
from lavis.common.registry import registry
from lavis.metrics.cider import CiderDReward
from lavis.metrics.ptb import require_helper
from lavis.tasks.captioning import CaptionTask

logger = logging.getLogger(__name__)


def unwrap(model: nn.Module) -> nn.Module:
    return getattr(model, "module", model)


@registry.register_task("scst")
class SCSTTask(CaptionTask):
    """Self-critical training on CIDEr-D (evaluation as in ``captioning``)."""

    def __init__(
        self,
        scst_candidates: Literal["beam", "sample"] = "beam",
        scst_num_candidates: int = 5,
        scst_temperature: float = 1.0,
        scst_max_len: int = 32,
        scst_references: Literal["paired", "all"] = "paired",
        scst_document_frequency: Literal["batch", "corpus"] = "batch",
        scst_baseline: Literal["mean", "mean_others", "greedy"] = "mean",
        scst_reward_orientation: Literal["standard", "paper"] = "standard",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if scst_baseline == "mean_others" and scst_num_candidates < 2:
            raise ValueError("run.scst_baseline=mean_others needs run.scst_num_candidates >= 2")
        if scst_reward_orientation == "paper" and scst_references != "paired":
            raise ValueError("run.scst_reward_orientation=paper scores the paired caption against the candidate: "
                             "it needs run.scst_references=paired")
        self.mode, self.k, self.temperature = scst_candidates, scst_num_candidates, scst_temperature
        self.max_len, self.references, self.baseline = scst_max_len, scst_references, scst_baseline
        self.document_frequency, self.orientation = scst_document_frequency, scst_reward_orientation
        self.reward = CiderDReward(orientation=scst_reward_orientation)

    def check_ready(self, cfg: Config) -> None:
        super().check_ready(cfg)
        require_helper()  # the reward's tokenizer: no Java or javac fails here, before any training
        if cfg.run.checkpoint is None and cfg.model.get("finetuned") is None and not cfg.run.resume_ckpt_path:
            logger.warning("SCST starts from the model's pretrained weights: no run.checkpoint (usually the "
                           "cross-entropy run's checkpoint_best.pth) or model.finetuned is set")

    def build_datasets(self, cfg: Config) -> dict[str, dict[str, Dataset]]:
        datasets = super().build_datasets(cfg)
        if self.document_frequency == "corpus":
            corpus = [refs for per in datasets.values() for split, ds in per.items()
                      if split in cfg.run.train_splits for refs in ds.references.values()]
            self.reward = CiderDReward(corpus, orientation=self.orientation)
        return datasets

    def train_step(self, model: nn.Module, batch: dict[str, Any]) -> dict[str, Any]:
        module = unwrap(model)
        with torch.no_grad():
            candidates = module.generate(batch, **self._candidate_args())
        refs = batch["references"] if self.references == "all" else [[c] for c in batch["text_input"]]
        refs_per_candidate = [r for r in refs for _ in range(self.k)]
        rewards = self.reward(candidates, refs_per_candidate).reshape(len(refs), self.k)
        advantages = rewards - self._baseline(module, batch, rewards, refs)
        batch = {**batch, "scst_captions": candidates, "scst_advantages": torch.as_tensor(advantages.reshape(-1))}
        return {"loss": model(batch)["loss"], "reward": float(rewards.mean())}

    def _candidate_args(self) -> dict[str, Any]:
        args = {**self.generation, "max_length": self.max_len, "min_length": 1, "num_captions": self.k}
        if self.mode == "beam":
            return {**args, "use_nucleus_sampling": False, "num_beams": max(self.k, args["num_beams"])}
        return {**args, "use_nucleus_sampling": True, "num_beams": 1, "top_p": 1.0, "temperature": self.temperature}

    def _baseline(self, module: nn.Module, batch: dict[str, Any], rewards: np.ndarray, refs) -> np.ndarray:
        if self.baseline == "mean":
            return rewards.mean(axis=1, keepdims=True)
        if self.baseline == "mean_others":
            return (rewards.sum(axis=1, keepdims=True) - rewards) / (self.k - 1)
        with torch.no_grad():
            greedy = module.generate(batch, **{**self.generation, "num_beams": 1, "max_length": self.max_len,
                                               "use_nucleus_sampling": False})
        return self.reward(greedy, refs).reshape(-1, 1)
