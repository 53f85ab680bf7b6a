"""``tagging``: objects and actions pulled out of a clip's caption by an instruction LLM.

A ``transformers`` causal LM from a local folder (``AutoModelForCausalLM``; remote code only
when the config says ``trust_remote_code: true``) answers one prompt per key (``objects``,
``actions``) with the caption filled in; the answer is parsed into a list (a JSON list if there
is one, else items separated by commas, semicolons or lines, bullets and numbering removed,
lower-cased, de-duplicated). The caption comes from an earlier stage (``source_key``), or from the
input CSV's column of that name when the stage runs alone:

    python -m lavis.pipeline.stages.tagging meta.csv --model PATH --key objects --output_prefix meta
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import re
from pathlib import Path
from typing import Any

import torch

from lavis.common.io import atomic_open
from lavis.common.log import progress, setup_logging
from lavis.common.registry import registry
from lavis.models.image_embedders import require_model_dir
from lavis.pipeline.stages.base import Clip, Stage
from lavis.pipeline.stages.hf_loading import load_for_inference

logger = logging.getLogger(__name__)

DEFAULT_PROMPTS = {
    "objects": "List the objects visible in this video description, as a comma-separated list of nouns. "
               "Description: {caption}\nObjects:",
    "actions": "List the actions happening in this video description, as a comma-separated list of verbs "
               "or short verb phrases. Description: {caption}\nActions:",
}
BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s*")


def parse_list(text: str) -> list[str]:
    """An LLM answer -> clean, de-duplicated items (a JSON list wins when the answer has one)."""
    match = re.search(r"\[.*?\]", text, re.S)
    if match:
        try:
            items = json.loads(match.group(0))
            if isinstance(items, list):
                return _clean(str(i) for i in items)
        except json.JSONDecodeError:
            pass
    first_block = text.strip().split("\n\n")[0]
    return _clean(part for line in first_block.splitlines() for part in re.split(r"[,;]", BULLET.sub("", line)))


def _clean(items) -> list[str]:
    out: list[str] = []
    for item in items:
        item = item.strip().strip(".\"'").strip().lower()
        if item and item not in out:
            out.append(item)
    return out


@registry.register("stage", "tagging")
class TaggingStage(Stage):
    name = "tagging"

    def __init__(self, path: str | None = None, keys: list[str] | None = None, prompts: dict[str, str] | None = None,
                 source_key: str = "caption", max_new_tokens: int = 64, trust_remote_code: bool = False) -> None:
        """``path``: the LLM folder; ``prompts``: per key, with ``{caption}`` (defaults above)."""
        self.path, self.source_key, self.max_new_tokens = path, source_key, max_new_tokens
        self.keys = list(keys or ["objects", "actions"])
        self.prompts = {**DEFAULT_PROMPTS, **(prompts or {})}
        missing = [k for k in self.keys if k not in self.prompts]
        if missing:
            raise ValueError(f"tagging: no prompt for key(s) {missing}; add them under 'prompts'")
        bad = [k for k in self.keys if "{caption}" not in self.prompts[k]]
        if bad:
            raise ValueError(f"tagging: the prompt for {bad} must contain '{{caption}}'")
        self.trust_remote_code = trust_remote_code

    def setup(self, device: torch.device, tp_mesh: Any = None) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        folder = require_model_dir(self.path, "tagging.path", "Qwen/Qwen2.5-7B-Instruct")
        self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True, trust_remote_code=self.trust_remote_code)
        self.tokenizer.padding_side = "left"  # decoder-only batches are padded on the left
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = load_for_inference(AutoModelForCausalLM, folder, device, tp_mesh, self.trust_remote_code)
        self.device = device

    def prompt(self, key: str, caption: str) -> str:
        text = self.prompts[key].format(caption=caption)
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                                      add_generation_prompt=True)
        return text

    @torch.no_grad()
    def answer(self, prompts: list[str]) -> list[str]:
        batch = self.tokenizer(prompts, return_tensors="pt", padding=True).to(self.device)
        out = self.model.generate(**batch, max_new_tokens=self.max_new_tokens, do_sample=False,
                                  pad_token_id=self.tokenizer.pad_token_id)
        return self.tokenizer.batch_decode(out[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)

    def tag(self, captions: list[str]) -> list[dict[str, list[str]]]:
        tags: list[dict[str, list[str]]] = [{} for _ in captions]
        for key in self.keys:
            for row, text in zip(tags, self.answer([self.prompt(key, c) for c in captions])):
                row[key] = parse_list(text)
        return tags

    def process(self, clips: list[Clip]) -> list[dict[str, Any]]:
        ready = [i for i, c in enumerate(clips) if c.fields.get(self.source_key)]
        tags = dict(zip(ready, self.tag([clips[i].fields[self.source_key] for i in ready]))) if ready else {}
        return [tags.get(i, {"error": f"no '{self.source_key}' to tag (run a caption stage before tagging)"})
                for i in range(len(clips))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Tag the captions of a CSV with an instruction LLM.")
    parser.add_argument("meta", help="CSV with a caption column")
    parser.add_argument("--model", required=True, help="local LLM folder")
    parser.add_argument("--key", choices=sorted(DEFAULT_PROMPTS), required=True)
    parser.add_argument("--source_key", default="caption")
    parser.add_argument("--output_prefix", help="writes <prefix>_<key>.csv (default: beside the input)")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    setup_logging()
    with open(args.meta, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if rows and args.source_key not in rows[0]:
        logger.error("%s has no %r column", args.meta, args.source_key)
        return 2
    stage = TaggingStage(args.model, keys=[args.key], source_key=args.source_key)
    try:
        stage.setup(torch.device(args.device))
    except FileNotFoundError as err:
        logger.error("%s", err)
        return 2
    for start in progress(range(0, len(rows), args.batch_size), desc=f"tagging {args.key}"):
        chunk = [r for r in rows[start : start + args.batch_size] if r[args.source_key]]
        for row, tags in zip(chunk, stage.tag([r[args.source_key] for r in chunk])):
            row[args.key] = json.dumps(tags[args.key], ensure_ascii=False)
    prefix = args.output_prefix or str(Path(args.meta).with_suffix(""))
    out = Path(f"{prefix}_{args.key}.csv")
    names = list(rows[0]) if rows else []
    if args.key not in names:
        names.append(args.key)
    with atomic_open(out) as f:
        writer = csv.DictWriter(f, fieldnames=names)
        writer.writeheader()
        writer.writerows(rows)
    logger.info("tagged %d of %d rows (%s) -> %s", sum(bool(r.get(args.key)) for r in rows), len(rows), args.key, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
