"""The training/evaluation loop, counted in optimiser steps.

Read it top to bottom: ``train`` sets up the optimiser, schedule and (on resume) every saved
state, then repeats ``_train_step`` until ``max_steps``, validating every ``val_freq`` steps and
saving every ``save_freq`` steps. ``evaluate`` shards a split across ranks, gathers the results
in memory in dataset order and lets the task score them on rank 0.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)
from torch.utils.data import Dataset

from lavis.common import checkpoint as ckpt_io
from lavis.common import dist
from lavis.common.config import Config, RunConfig
from lavis.common.io import atomic_write_json
from lavis.common.log import progress
from lavis.common.optim import build_optimizer
from lavis.common.registry import registry
from lavis.datasets.samplers import TrainSampler
from lavis.runners.loaders import Splits, eval_loader, move_to, train_batches
from lavis.runners.parallel import gradient_sync, wrap_model
from lavis.tasks.base_task import BaseTask

logger = logging.getLogger(__name__)


@dataclass
class TrainState:
    """Where training stands; saved in every checkpoint."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0  # micro-batches of the current epoch already consumed (per rank)
    best_metric: float | None = None
    best_step: int | None = None


@registry.register_runner("runner_step")
class StepRunner:
    """Step-based runner for DDP, FSDP or a single process."""

    def __init__(
        self,
        cfg: Config,
        task: BaseTask,
        model: nn.Module,
        datasets: dict[str, dict[str, Dataset]],
        job_dir: Path,
    ) -> None:
        self.cfg = cfg
        self.run: RunConfig = cfg.run
        self.task = task
        self.job_dir = Path(job_dir)
        self.rank = dist.get_rank()
        self.world_size = dist.get_world_size()
        self.device = dist.resolve_device(self.run.device)
        self.model = model.to(self.device)
        self.wrapped: nn.Module = self.model
        self.sharded = self.run.wrapper == "fsdp" and self.world_size > 1
        self.skipped: list[tuple] = []  # unreadable samples seen by this rank
        self.splits = Splits(datasets)
        if self.run.checkpoint:
            ckpt = ckpt_io.load_checkpoint(self.run.checkpoint)
            ckpt_io.load_trainable(self.model, ckpt, self.run.checkpoint)
            logger.info("loaded weights from %s (step %s)", self.run.checkpoint, ckpt["train_state"]["step"])

    # ------------------------------------------------------------------ training
    def train(self) -> dict[str, Any]:
        run = self.run
        train_set = self.splits.training(run.train_splits)
        per_rank_batches = TrainSampler(len(train_set), self.rank, self.world_size, run.seed, 0).per_rank
        per_rank_batches //= run.batch_size_train
        if per_rank_batches == 0:
            raise ValueError(
                f"run.batch_size_train={run.batch_size_train} x {self.world_size} ranks exceeds the "
                f"{len(train_set)} training samples; lower the batch size"
            )
        max_steps = self._max_steps(per_rank_batches)

        self.wrapped = wrap_model(
            self.model, run.wrapper, self.world_size, self.device, run.find_unused_parameters
        )
        state, resume = TrainState(), None
        if run.resume_ckpt_path:
            resume = ckpt_io.load_checkpoint(run.resume_ckpt_path)
            self._load_weights(resume, run.resume_ckpt_path)
            state = TrainState(**resume["train_state"])
        optimizer = build_optimizer(self.model, run.init_lr, run.weight_decay, tuple(run.betas))
        schedule = registry.get("lr_scheduler", run.lr_sched)(
            optimizer,
            init_lr=run.init_lr,
            max_steps=max_steps,
            min_lr=run.min_lr,
            warmup_lr=run.warmup_lr,
            warmup_steps=run.warmup_steps,
        )
        scaler = self._grad_scaler()
        if resume is not None:
            set_optimizer_state_dict(
                self.wrapped, optimizer, resume["optimizer"], options=StateDictOptions(full_state_dict=True)
            )
            if scaler is not None and resume.get("scaler"):
                scaler.load_state_dict(resume["scaler"])
            self._restore_rng(resume)
            logger.info("resumed from %s at step %d", run.resume_ckpt_path, state.step)
            del resume

        batches = train_batches(
            train_set, state, batch_size=run.batch_size_train, num_workers=run.num_workers, seed=run.seed,
            rank=self.rank, world_size=self.world_size, pin_memory=self.device.type == "cuda",
        )
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        logger.info(
            "training %d steps: %d samples, %d rank(s) x batch %d x accum %d, %d trainable params",
            max_steps, len(train_set), self.world_size, run.batch_size_train,
            run.accum_grad_iters, sum(p.numel() for p in trainable),
        )
        start_step, start_time = state.step, time.time()
        self.model.train()
        bar = progress(total=max_steps, initial=state.step, desc="train", rank=self.rank)
        while state.step < max_steps:
            lr = schedule.step(state.step)
            logs = self._train_step(state.step, batches, optimizer, scaler, trainable)
            state.step += 1
            bar.update(1)
            if state.step % run.log_freq == 0 or state.step == max_steps:
                logs = {k: dist.all_reduce_mean(v) for k, v in logs.items()}
                bar.set_postfix(loss=f"{logs['loss']:.4f}", lr=f"{lr:.2e}")
                self._log_metrics({"step": state.step, **logs, "lr": lr})
            final = state.step == max_steps
            if run.valid_splits and ((run.val_freq and state.step % run.val_freq == 0) or final):
                self._validate(state, optimizer, scaler)
            if (run.save_freq and state.step % run.save_freq == 0) or final:
                self._save(f"checkpoint_{state.step:07d}.pth", optimizer, scaler, state)
                self._prune_checkpoints()
            if final and not run.valid_splits:
                self._save_pretrained()
        bar.close()

        elapsed = time.time() - start_time
        samples = (state.step - start_step) * run.batch_size_train * run.accum_grad_iters * self.world_size
        summary = {
            "steps": state.step,
            "seconds": round(elapsed, 2),
            "samples_per_second": round(samples / max(elapsed, 1e-9), 2),
            "best_metric": state.best_metric,
            "best_step": state.best_step,
        }
        summary["skipped_samples"] = sum(dist.all_gather_object(len(self.skipped)))
        logger.info(
            "training done: %d steps in %.1f s (%.1f samples/s); best %s = %s at step %s; "
            "%d unreadable samples skipped; outputs in %s",
            state.step, elapsed, summary["samples_per_second"], run.best_metric,
            state.best_metric, state.best_step, summary["skipped_samples"], self.job_dir,
        )
        return summary

    def _train_step(self, step: int, batches: Iterator[Any], optimizer, scaler, trainable) -> dict[str, float]:
        """One optimiser step over ``accum_grad_iters`` micro-batches; returns mean loss and the
        task's other scalars (``train_step`` may return ``{"loss": ..., "reward": ...}``)."""
        run = self.run
        total = torch.zeros((), device=self.device)
        extras: dict[str, float] = {}
        for micro in range(run.accum_grad_iters):
            batch = move_to(self._note_skipped(next(batches)), self.device)
            last = micro == run.accum_grad_iters - 1
            with gradient_sync(self.wrapped, self.sharded, last), self._autocast():
                out = self.task.train_step(self.wrapped, batch)
            loss = out["loss"] if isinstance(out, dict) else out
            for key, value in (out.items() if isinstance(out, dict) else ()):
                if key != "loss":
                    extras[key] = extras.get(key, 0.0) + float(value) / run.accum_grad_iters
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss is {loss.item()} at step {step}; lower the lr or check the data")
            scaled = loss / run.accum_grad_iters
            (scaler.scale(scaled) if scaler is not None else scaled).backward()
            total += loss.detach()
        if scaler is not None:
            scaler.unscale_(optimizer)
        if run.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(trainable, run.max_grad_norm)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return {"loss": total.item() / run.accum_grad_iters, **extras}

    def _max_steps(self, per_rank_batches: int) -> int:
        run = self.run
        if run.max_steps is not None:
            return run.max_steps
        if run.max_epochs is not None:
            return max(1, math.ceil(run.max_epochs * per_rank_batches / run.accum_grad_iters))
        raise ValueError("set run.max_steps or run.max_epochs")

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, splits: list[str], step: int | str = "final") -> dict[str, dict[str, float]]:
        """Metrics per split; results are gathered from every rank, complete and in order."""
        return {split: self._evaluate_split(split, step) for split in splits}

    def evaluate_best(self, splits: list[str]) -> dict[str, dict[str, float]]:
        """Evaluate with the best validation checkpoint of this job (the last weights if none)."""
        best = self.job_dir / "checkpoint_best.pth"
        if not best.is_file():
            logger.info("no best checkpoint (no validation ran); evaluating the final weights")
            return self.evaluate(splits, "final")
        ckpt = ckpt_io.load_checkpoint(best)
        self._load_weights(ckpt, str(best))
        logger.info("evaluating the best checkpoint (step %s)", ckpt["train_state"]["step"])
        return self.evaluate(splits, "best")

    @torch.no_grad()
    def _evaluate_split(self, split: str, step: int | str) -> dict[str, float]:
        dataset = self.splits.one(split)
        loader, sampler = eval_loader(
            dataset, batch_size=self.run.batch_size_eval, num_workers=self.run.num_workers, seed=self.run.seed,
            rank=self.rank, world_size=self.world_size, pad=self.sharded, pin_memory=self.device.type == "cuda",
        )
        # FSDP needs every rank in every forward; DDP's wrapper would only add hooks here.
        model = self.wrapped if self.sharded else self.model
        was_training = model.training
        model.eval()
        results: list[dict[str, Any]] = []
        for batch in progress(loader, desc=f"eval {split}", rank=self.rank):
            with self._autocast():
                results.extend(self.task.valid_step(model, move_to(self._note_skipped(batch, True), self.device)))
        model.train(was_training)
        if len(results) != len(sampler):
            raise RuntimeError(
                f"{type(self.task).__name__}.valid_step returned {len(results)} results for "
                f"{len(sampler)} samples; it must return one result per sample"
            )
        gathered = dist.all_gather_object(list(zip(sampler.real, results[: sampler.num_real])))
        metrics: dict[str, float] | None = None
        if self.rank == 0:
            ordered = sorted((pair for part in gathered for pair in part), key=lambda p: p[0])
            indices = [i for i, _ in ordered]
            if indices != list(range(len(dataset))):
                raise RuntimeError(f"gathered {len(indices)} results for {len(dataset)} samples of {split}")
            merged = [r for _, r in ordered]
            tag = f"step{step:07d}" if isinstance(step, int) else str(step)
            atomic_write_json(merged, self.job_dir / "result" / f"{split}_{tag}.json")
            metrics = self.task.evaluate(merged, split, dataset, self.job_dir)
            self._log_metrics({"step": step, "split": split, **metrics})
            logger.info("%s @ %s: %s", split, step, _format_metrics(metrics))
        return dist.broadcast_object(metrics)

    def _validate(self, state: TrainState, optimizer, scaler) -> None:
        all_metrics = self.evaluate(self.run.valid_splits, state.step)
        split = self.run.best_split or self.run.valid_splits[0]
        if split not in all_metrics:
            raise ValueError(f"run.best_split={split!r} is not among run.valid_splits {self.run.valid_splits}")
        metrics = all_metrics[split]
        if self.run.best_metric not in metrics:
            raise KeyError(
                f"run.best_metric={self.run.best_metric!r} is not a metric of {split} "
                f"(available: {', '.join(sorted(metrics))})"
            )
        value = float(metrics[self.run.best_metric])
        better = state.best_metric is None or (
            value > state.best_metric if self.run.best_mode == "max" else value < state.best_metric
        )
        if better:
            state.best_metric, state.best_step = value, state.step
            self._save("checkpoint_best.pth", optimizer, scaler, state)
            self._save_pretrained()

    # ------------------------------------------------------------------ checkpoints
    def _save(self, name: str, optimizer, scaler, state: TrainState) -> None:
        """Write a resumable checkpoint (collective: every rank must call it)."""
        options = StateDictOptions(full_state_dict=True, cpu_offload=True)
        if self.sharded:
            full = get_model_state_dict(self.wrapped, options=options)
        else:
            full = self.model.state_dict()
        optim_state = get_optimizer_state_dict(self.wrapped, optimizer, options=options)
        rng = dist.all_gather_object(ckpt_io.capture_rng())
        if self.rank == 0:
            ckpt_io.atomic_save(
                {
                    "format": ckpt_io.FORMAT,
                    "version": ckpt_io.VERSION,
                    "model": ckpt_io.trainable_state(self.model, full),
                    "frozen_manifest": ckpt_io.frozen_manifest(self.model),
                    "optimizer": optim_state,
                    "scaler": scaler.state_dict() if scaler is not None else None,
                    "rng": rng,
                    "world_size": self.world_size,
                    "train_state": asdict(state),
                    "config": self.cfg.to_yaml(),
                },
                self.job_dir / name,
            )
            logger.info("saved %s (step %d)", self.job_dir / name, state.step)
        dist.barrier()

    def _save_pretrained(self) -> None:
        """``run.save_pretrained``: the model's own folder format in ``<job>/pretrained`` (rank 0;
        written beside it and renamed into place, so a reader never sees half a folder)."""
        if not self.run.save_pretrained:
            return
        if self.sharded:
            raise ValueError("run.save_pretrained needs the whole model on rank 0; use wrapper=ddp")
        if self.rank == 0:
            final, tmp = self.job_dir / "pretrained", self.job_dir / ".pretrained.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            self.model.save_pretrained(tmp)
            old = self.job_dir / ".pretrained.old"
            shutil.rmtree(old, ignore_errors=True)
            if final.exists():
                final.rename(old)
            tmp.rename(final)
            shutil.rmtree(old, ignore_errors=True)
            logger.info("saved the model's pretrained folder to %s", final)
        dist.barrier()

    def _load_weights(self, ckpt: dict[str, Any], source: str) -> None:
        """Load a checkpoint's trainable weights, strictly, into the (possibly sharded) model."""
        if self.sharded:
            ckpt_io.check_fits(self.model, ckpt["model"], ckpt["frozen_manifest"], source)
            set_model_state_dict(
                self.wrapped, ckpt["model"], options=StateDictOptions(full_state_dict=True, strict=False)
            )
        else:
            ckpt_io.load_trainable(self.model, ckpt, source)

    def _prune_checkpoints(self) -> None:
        if self.rank != 0 or self.run.keep_last_checkpoints <= 0:
            return
        steps = sorted(self.job_dir.glob("checkpoint_[0-9]*.pth"))
        for old in steps[: -self.run.keep_last_checkpoints]:
            old.unlink(missing_ok=True)

    def _restore_rng(self, ckpt: dict[str, Any]) -> None:
        saved = ckpt.get("rng") or []
        if ckpt.get("world_size") == self.world_size and len(saved) == self.world_size:
            ckpt_io.restore_rng(saved[self.rank])
        else:
            logger.warning(
                "checkpoint was written by %s rank(s), this run has %d: random states not restored, "
                "so the resumed run is not bit-identical", ckpt.get("world_size"), self.world_size,
            )

    # ------------------------------------------------------------------ helpers
    def _note_skipped(self, batch: Any, evaluating: bool = False) -> Any:
        """Count samples the dataset could not load (``batch["skipped"]``: (position, id, reason)).

        In training a batch of only unreadable samples is an error (the ranks must step together);
        in evaluation the task records an error result for each.
        """
        if isinstance(batch, dict) and batch.get("skipped"):
            self.skipped.extend(batch["skipped"])
            if not evaluating and len(batch) == 1:
                raise RuntimeError(f"every sample of a training batch was unreadable: {batch['skipped']}")
        return batch

    def _autocast(self):
        if self.run.amp and self.device.type == "cuda":
            dtype = torch.bfloat16 if self.run.amp_dtype == "bfloat16" else torch.float16
            return torch.autocast("cuda", dtype=dtype)
        return contextlib.nullcontext()

    def _grad_scaler(self):
        if self.run.amp and self.device.type == "cuda" and self.run.amp_dtype == "float16":
            return torch.amp.GradScaler("cuda")
        return None

    def _log_metrics(self, record: dict[str, Any]) -> None:
        if self.rank == 0:
            with open(self.job_dir / "metrics.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")


def _format_metrics(metrics: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items())

