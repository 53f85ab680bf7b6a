"""The captioning and SCST tasks on tiny models and fake batches."""

import json

import numpy as np
import pytest
import torch

import lavis  # noqa: F401  (registration)
from lavis.common.registry import registry
from lavis.metrics.cider import CiderDReward
from lavis.models.blip2_video.config import LanguageConfig, QFormerConfig, VisionConfig
from tests.tiny_models import TINY_OPT, TINY_QFORMER, TINY_T5, TINY_VISION, make_tokenizer


class FakeCaptioner:
    def generate(self, batch, **kwargs):
        return [f"caption of {vid}" for vid in batch["video_id"]]


def test_valid_step_keeps_batch_order_around_unreadable_videos():
    task = registry.get("task", "captioning")()
    batch = {"video": torch.zeros(2), "video_id": ["a", "c"], "skipped": [(1, "b", "truncated"), (3, "d", "empty")]}
    assert task.valid_step(FakeCaptioner(), batch) == [
        {"video_id": "a", "caption": "caption of a"},
        {"video_id": "b", "caption": None, "error": "truncated"},
        {"video_id": "c", "caption": "caption of c"},
        {"video_id": "d", "caption": None, "error": "empty"},
    ]
    only_bad = {"skipped": [(0, "x", "missing")]}
    assert task.valid_step(FakeCaptioner(), only_bad) == [{"video_id": "x", "caption": None, "error": "missing"}]


class FakeSplit:
    references = {"v1": ["A man is singing.", "someone sings"], "v2": ["a dog runs", "the dog is running"],
                  "v3": ["never scored"]}

    def ground_truth(self):
        return {"images": [{"id": "v1"}, {"id": "v2"}, {"id": "v3"}], "annotations": []}


def test_evaluate_scores_readable_videos_and_counts_the_rest(tmp_path):
    from lavis.metrics.caption import score_captions

    task = registry.get("task", "captioning")(agg_metric="Bleu_4")
    results = [{"video_id": "v1", "caption": "a man sings"}, {"video_id": "v2", "caption": "a dog is running"},
               {"video_id": "v3", "caption": None, "error": "truncated"}]
    metrics = task.evaluate(results, "test", FakeSplit(), tmp_path)
    expected = score_captions({k: FakeSplit.references[k] for k in ("v1", "v2")},
                              {"v1": "a man sings", "v2": "a dog is running"})
    assert {k: metrics[k] for k in expected} == expected
    assert metrics["agg_metrics"] == expected["Bleu_4"] and metrics["num_skipped"] == 1.0
    assert json.loads((tmp_path / "result" / "test_gt.json").read_text())["images"][2] == {"id": "v3"}
    with pytest.raises(ValueError, match="agg_metric='cider'"):
        registry.get("task", "captioning")(agg_metric="cider")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tok")
    return {"opt": make_tokenizer(root / "opt", "opt"), "t5": make_tokenizer(root / "t5", "t5")}


def tiny_model(tiny, head):
    kind, lm = ("decoder_only", TINY_OPT) if head == "opt" else ("encoder_decoder", TINY_T5)
    torch.manual_seed(0)
    return registry.get("model", "blip2_video_opt")(
        vision=VisionConfig(**TINY_VISION), qformer=QFormerConfig(**TINY_QFORMER), random_init=True,
        language=LanguageConfig(kind=kind, config=lm, tokenizer=str(tiny[head]), freeze=False))


@pytest.mark.parametrize("head", ["opt", "t5"])
@pytest.mark.parametrize("candidates", ["beam", "sample"])
def test_scst_step_moves_probability_towards_better_captions(tiny, head, candidates):
    model = tiny_model(tiny, head).train()
    task = registry.get("task", "scst")(scst_candidates=candidates, scst_num_candidates=3, scst_max_len=6,
                                        scst_temperature=1.5, num_beams=3)
    batch = {"video": torch.randn(2, 2, 3, 28, 28, generator=torch.Generator().manual_seed(0)),
             "text_input": ["a man is singing on stage", "the red circle moves left"]}
    torch.manual_seed(1)
    with torch.no_grad():
        cands = model.generate(batch, **task._candidate_args())
    rewards = task.reward(cands, [[c] for c in batch["text_input"] for _ in range(3)]).reshape(2, 3)
    advantages = rewards - rewards.mean(1, keepdims=True)
    scst_batch = {**batch, "scst_captions": cands, "scst_advantages": torch.as_tensor(advantages.reshape(-1))}
    before = model(scst_batch)["logprobs"].detach()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.05)
    model(scst_batch)["loss"].backward()
    optimizer.step()
    after = model(scst_batch)["logprobs"].detach()
    change = (after - before).numpy().reshape(2, 3)
    for row in range(2):  # where rewards differ, the best candidate gains on the worst
        if advantages[row].max() - advantages[row].min() > 1e-6:
            best, worst = advantages[row].argmax(), advantages[row].argmin()
            assert change[row, best] > change[row, worst]
    torch.manual_seed(2)
    out = task.train_step(model, batch)
    assert torch.isfinite(out["loss"]) and out["reward"] >= 0


def test_scst_baselines():
    rewards = np.array([[1.0, 2.0, 3.0]])
    task = registry.get("task", "scst")(scst_num_candidates=3)
    assert np.allclose(task._baseline(None, {}, rewards, None), [[2.0]])
    task = registry.get("task", "scst")(scst_num_candidates=3, scst_baseline="mean_others")
    assert np.allclose(task._baseline(None, {}, rewards, None), [[2.5, 2.0, 1.5]])
    with pytest.raises(ValueError, match="mean_others needs"):
        registry.get("task", "scst")(scst_num_candidates=1, scst_baseline="mean_others")


def test_scst_reward_orientation():
    task = registry.get("task", "scst")(scst_reward_orientation="paper", scst_num_candidates=2)
    candidates, paired = ["a man sings", "a dog", "a dog runs", "a man"], ["a man is singing", "a dog runs fast"]
    refs = [[p] for p in paired for _ in range(2)]
    rewards = task.reward(candidates, refs)
    assert np.array_equal(rewards, CiderDReward(orientation="paper")(candidates, refs))
    assert np.max(np.abs(rewards - CiderDReward()(candidates, refs))) > 1e-3
    assert registry.get("task", "scst")().reward.orientation == "standard"
    with pytest.raises(ValueError, match="needs run.scst_references=paired"):
        registry.get("task", "scst")(scst_reward_orientation="paper", scst_references="all")
