"""The composed BLIP-2 video captioner on tiny random configs (CPU, no downloads)."""

import logging

import pytest
import torch
from transformers import Blip2Config, Blip2ForConditionalGeneration

import lavis  # noqa: F401  (registration)
from lavis.common.registry import registry
from lavis.models.blip2_video.config import LanguageConfig, QFormerConfig, VisionConfig
from tests.tiny_models import TINY_LLAMA, TINY_OPT, TINY_QFORMER, TINY_T5, TINY_VISION, VOCAB, make_tokenizer

HEADS = {
    "opt": ("blip2_video_opt", "decoder_only", TINY_OPT),
    "t5": ("blip2_video_t5", "encoder_decoder", TINY_T5),
    "llama": ("blip2_video_opt", "decoder_only", TINY_LLAMA),
}
CAPTIONS = ["a man is singing on stage", "the red circle moves left"]


@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory):
    root = tmp_path_factory.mktemp("tokenizers")
    return {style: make_tokenizer(root / style, style) for style in ("opt", "t5", "llama", "bert")}


def build(head, tokenizers, fusion="concat", seed=0, **language):
    name, kind, lm = HEADS[head]
    torch.manual_seed(seed)
    return registry.get("model", name)(
        vision=VisionConfig(**TINY_VISION), qformer=QFormerConfig(**TINY_QFORMER),
        language=LanguageConfig(kind=kind, config=lm, tokenizer=str(tokenizers[head]), **language),
        fusion=fusion, random_init=True,
    )


def train_steps(model, batch, steps, lr=3e-3) -> list[float]:
    """AdamW steps on one fixed batch; the losses, each checked finite."""
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    losses = []
    for _ in range(steps):
        loss = model(batch)["loss"]
        assert torch.isfinite(loss)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    return losses


def video(batch=2, frames=3, seed=1):
    return torch.randn(batch, frames, 3, 28, 28, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("fusion", ["concat", "frame_queries", "mean"])
@pytest.mark.parametrize("head", list(HEADS))
def test_loss_is_finite_and_decreases(tokenizers, head, fusion):
    model = build(head, tokenizers, fusion, freeze=False)
    assert not any(p.requires_grad for p in model.vision.parameters())  # ViT frozen by default
    losses = train_steps(model, {"video": video(), "text_input": CAPTIONS}, 8)
    assert losses[-1] < losses[0] * 0.8


def test_prompt_tokens_are_masked_from_the_loss(tokenizers):
    model = build("opt", tokenizers, prompt="a video of")
    model.eval()
    batch = {"video": video(1), "text_input": ["a man"]}
    prefix = model.encode(batch["video"])
    ids = model.language.tokenizer(["a video of a man</s>"], return_tensors="pt")
    logits = model.language.decoder_logits(prefix, ids.input_ids, ids.attention_mask)
    q = prefix.shape[1]
    # targets: "a", "man", "</s>" at text positions 4, 5, 6 (after BOS and the 3 prompt words)
    targets = ids.input_ids[0, 4:]
    expected = torch.nn.functional.cross_entropy(logits[0, q + 3 : q + 6], targets)
    assert model(batch)["loss"].item() == pytest.approx(expected.item(), rel=1e-5)


# The tiny sizes above (TINY_VISION, TINY_QFORMER) in transformers' config names.
HF_TINY = dict(
    vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                       image_size=28, patch_size=14, layer_norm_eps=1e-6),
    qformer_config=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                        vocab_size=64, max_position_embeddings=64, encoder_hidden_size=32),
    num_query_tokens=4, image_token_index=VOCAB - 1,
)


def save_hf_twin(model_cls, config, seed, tmp_path):
    """A transformers BLIP-2-family model with tiny random weights, saved to ``tmp_path / "hf"``."""
    torch.manual_seed(seed)
    hf = model_cls(config).eval()
    hf.save_pretrained(tmp_path / "hf")
    return hf


def hf_twin(head, tmp_path):
    """A transformers Blip2ForConditionalGeneration with the tiny sizes, saved to a folder."""
    config = Blip2Config(**HF_TINY, text_config=HEADS[head][2])
    return save_hf_twin(Blip2ForConditionalGeneration, config, 5, tmp_path)


@pytest.mark.parametrize("head", ["opt", "t5"])
def test_same_logits_and_greedy_captions_as_transformers_blip2(tokenizers, head, tmp_path):
    name, kind, lm = HEADS[head]
    hf = hf_twin(head, tmp_path)
    model = registry.get("model", name)(
        vision=VisionConfig(**TINY_VISION), qformer=QFormerConfig(**TINY_QFORMER),
        language=LanguageConfig(kind=kind, tokenizer=str(tokenizers[head]), prompt="a video of"),
        pretrained=str(tmp_path / "hf"),
    ).eval()
    frames = video(2, 1)
    tok = model.language.tokenizer
    placeholder = torch.full((2, 4), VOCAB - 1)
    with torch.no_grad():
        if kind == "decoder_only":
            text = tok(["a video of a man", "a video of the dog"], padding="longest", return_tensors="pt")
            ours = model.language.decoder_logits(model.encode(frames), text.input_ids, text.attention_mask)
            theirs = hf(pixel_values=frames[:, 0], input_ids=torch.cat([placeholder, text.input_ids], 1),
                        attention_mask=torch.cat([torch.ones(2, 4, dtype=torch.long), text.attention_mask], 1)).logits
        else:
            text = tok(["a video of"] * 2, return_tensors="pt")
            target = tok(["a man", "the dog"], padding="longest", return_tensors="pt").input_ids
            embeds, mask = model.language._with_prefix(model.encode(frames), text.input_ids, text.attention_mask)
            ours = model.language.model(inputs_embeds=embeds, attention_mask=mask, labels=target).logits
            theirs = hf(pixel_values=frames[:, 0], input_ids=torch.cat([placeholder, text.input_ids], 1),
                        labels=target).logits
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-5)

    captions = model.generate({"video": frames}, num_beams=1, max_length=6, min_length=1)
    prompt = tok(["a video of"] * 2, return_tensors="pt")
    out = hf.generate(pixel_values=frames[:, 0], input_ids=torch.cat([placeholder, prompt.input_ids], 1),
                      max_new_tokens=6, min_new_tokens=1, do_sample=False, num_beams=1)
    if kind == "decoder_only":
        out = out[:, 4 + prompt.input_ids.shape[1]:]
    assert captions == [t.strip() for t in tok.batch_decode(out, skip_special_tokens=True)]


@pytest.mark.parametrize("head", ["opt", "t5"])
def test_generate_honours_its_arguments(tokenizers, head):
    model = build(head, tokenizers).eval()
    tok = model.language.tokenizer
    clips = video(2, 2)

    def lengths(captions):
        return [len(tok(c, add_special_tokens=False).input_ids) for c in captions]

    assert max(lengths(model.generate({"video": clips}, num_beams=2, max_length=3, min_length=1))) <= 3
    assert min(lengths(model.generate({"video": clips}, num_beams=2, max_length=9, min_length=9))) >= 8
    several = model.generate({"video": clips}, num_beams=4, num_captions=3, max_length=5, min_length=1)
    assert len(several) == 6
    torch.manual_seed(0)
    sampled = model.generate({"video": clips}, use_nucleus_sampling=True, top_p=0.9, temperature=2.0,
                             num_beams=1, num_captions=4, max_length=6, min_length=1)
    assert len(set(sampled)) > 1  # sampling at a high temperature varies
    greedy = model.generate({"video": clips}, num_beams=1, max_length=6, min_length=1)
    penalised = model.generate({"video": clips}, num_beams=1, max_length=6, min_length=1, repetition_penalty=50.0)
    assert all(len(set(c.split())) == len(c.split()) for c in penalised)  # no word twice
    assert greedy != penalised or all(len(set(c.split())) == len(c.split()) for c in greedy)


def test_save_and_load_a_captioner_folder(tokenizers, tmp_path):
    model = build("opt", tokenizers, fusion="mean").eval()
    model.save_pretrained(tmp_path / "captioner")
    again = registry.get("model", "blip2_video_opt").from_pretrained(str(tmp_path / "captioner")).eval()
    assert again.fusion == "mean"
    for (k, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), k
    clips = video(2, 2)
    assert model.generate({"video": clips}, max_length=5) == again.generate({"video": clips}, max_length=5)


def test_absent_weights_are_an_error_not_random(tokenizers, tmp_path):
    name, kind, lm = HEADS["opt"]
    kwargs = dict(vision=VisionConfig(**TINY_VISION), qformer=QFormerConfig(**TINY_QFORMER),
                  language=LanguageConfig(kind=kind, config=lm, tokenizer=str(tokenizers["opt"])))
    with pytest.raises(FileNotFoundError, match="no weights for .* parts language, projection, qformer, vision"):
        registry.get("model", name)(**kwargs)
    with pytest.raises(FileNotFoundError, match=r"set by 'model.pretrained'"):
        registry.get("model", name)(**kwargs, pretrained=str(tmp_path / "blip2-opt-2.7b"))
    with pytest.raises(FileNotFoundError, match=r"set by 'model.language.tokenizer'"):
        registry.get("model", name)(**{**kwargs, "language": LanguageConfig(kind=kind, config=lm,
                                                                           tokenizer=str(tmp_path / "tok"))})


def test_instruction_aware_qformer_matches_transformers_instructblip(tokenizers, tmp_path):
    from transformers import InstructBlipConfig, InstructBlipForConditionalGeneration

    hf = save_hf_twin(InstructBlipForConditionalGeneration, InstructBlipConfig(**HF_TINY, text_config=TINY_LLAMA),
                      3, tmp_path)
    model = registry.get("model", "blip2_video_vicuna_instruct")(
        vision=VisionConfig(**TINY_VISION),
        qformer=QFormerConfig(**TINY_QFORMER, instruction_aware=True, tokenizer=str(tokenizers["bert"])),
        language=LanguageConfig(kind="decoder_only", tokenizer=str(tokenizers["llama"]), prompt="describe the video"),
        pretrained=str(tmp_path / "hf"),
    ).eval()
    frames = video(2, 1)
    instruction = model.qformer_tokenizer(["describe the video"] * 2, return_tensors="pt")
    text = model.language.tokenizer(["describe the video a man"] * 2, return_tensors="pt")
    placeholder = torch.full((2, 4), VOCAB - 1)
    with torch.no_grad():
        ours = model.language.decoder_logits(model.encode(frames), text.input_ids, text.attention_mask)
        theirs = hf(pixel_values=frames[:, 0], qformer_input_ids=instruction.input_ids,
                    qformer_attention_mask=instruction.attention_mask,
                    input_ids=torch.cat([placeholder, text.input_ids], 1)).logits
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-5)
    # another instruction changes the visual prefix: the Q-Former reads it
    assert not torch.allclose(model.encode(frames), model.encode(frames, ["what does the man do"] * 2))


def lavis_layout(hf_state: dict) -> tuple[dict, dict, dict]:
    """Split a transformers BLIP-2 state dict the way LAVIS ships it: a stage-2 ``.pth``
    ({"model": Q-Former, query tokens, ln_vision, opt_proj}), ``eva_vit_g.pth`` (raw ViT keys,
    one block more than BLIP-2 uses) and the LLM's own weights."""
    blip2, vit, llm = {}, {}, {}
    for key, value in hf_state.items():
        if key.startswith("language_model."):
            llm[key[len("language_model."):]] = value
        elif key == "query_tokens":
            blip2["query_tokens"] = value
        elif key.startswith("language_projection."):
            blip2["opt_proj." + key.split(".", 1)[1]] = value
        elif key.startswith("vision_model.post_layernorm."):
            blip2["ln_vision." + key.rsplit(".", 1)[1]] = value
        elif key.startswith("qformer."):
            rest = key[len("qformer."):].replace(".attention.attention.", ".attention.self.")
            rest = rest.replace("crossattention.attention.", "crossattention.self.")
            rest = rest.replace("layernorm.", "embeddings.LayerNorm.") if rest.startswith("layernorm.") else rest
            blip2["Qformer.bert." + rest] = value
        elif key.startswith("vision_model.embeddings."):
            name = {"class_embedding": "cls_token", "position_embedding": "pos_embed",
                    "patch_embedding.weight": "patch_embed.proj.weight",
                    "patch_embedding.bias": "patch_embed.proj.bias"}[key[len("vision_model.embeddings."):]]
            vit[name] = value
        elif key.startswith("vision_model.encoder.layers."):
            i, rest = key[len("vision_model.encoder.layers."):].split(".", 1)
            if rest == "self_attn.qkv.bias":
                third = value.shape[0] // 3
                vit[f"blocks.{i}.attn.q_bias"], vit[f"blocks.{i}.attn.v_bias"] = value[:third], value[2 * third:]
                continue
            for hf_name, lavis_name in (("layer_norm1", "norm1"), ("layer_norm2", "norm2"),
                                        ("self_attn.qkv", "attn.qkv"), ("self_attn.projection", "attn.proj"),
                                        ("mlp.fc1", "mlp.fc1"), ("mlp.fc2", "mlp.fc2")):
                if rest.startswith(hf_name):
                    vit[f"blocks.{i}.{lavis_name}{rest[len(hf_name):]}"] = value
    vit.update({k.replace("blocks.1.", "blocks.2.", 1): v.clone() for k, v in vit.items() if k.startswith("blocks.1.")})
    blip2["Qformer.bert.embeddings.position_ids"] = torch.arange(64).unsqueeze(0)
    blip2["Qformer.cls.predictions.bias"] = torch.zeros(64)
    return {"model": blip2}, vit, llm


def test_lavis_pth_and_transformers_folder_load_into_identical_models(tokenizers, tmp_path):
    from transformers import AutoModelForCausalLM

    hf = hf_twin("opt", tmp_path)
    blip2, vit, llm = lavis_layout(hf.state_dict())
    torch.save(blip2, tmp_path / "blip2_pretrained_opt.pth")
    torch.save(vit, tmp_path / "eva_vit_g.pth")
    AutoModelForCausalLM.from_config(hf.config.text_config).save_pretrained(tmp_path / "opt")
    lm = AutoModelForCausalLM.from_pretrained(tmp_path / "opt")
    lm.load_state_dict(llm)
    lm.save_pretrained(tmp_path / "opt")
    common = dict(vision=VisionConfig(**TINY_VISION), qformer=QFormerConfig(**TINY_QFORMER))
    from_hf = registry.get("model", "blip2_video_opt")(
        **common, language=LanguageConfig(tokenizer=str(tokenizers["opt"])), pretrained=str(tmp_path / "hf"))
    from_lavis = registry.get("model", "blip2_video_opt")(
        **common, language=LanguageConfig(path=str(tmp_path / "opt"), tokenizer=str(tokenizers["opt"])),
        pretrained=str(tmp_path / "blip2_pretrained_opt.pth"), vision_weights=str(tmp_path / "eva_vit_g.pth"))
    a, b = from_hf.state_dict(), from_lavis.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])][:5]


def test_vision_weights_from_a_blip2_vision_model_folder(tokenizers, tmp_path):
    """A transformers ``Blip2VisionModel`` folder (what the shapes vision pretraining writes) fills
    exactly the vision encoder; the rest stays as ``random_init`` left it."""
    from transformers import Blip2VisionConfig, Blip2VisionModel

    torch.manual_seed(5)
    cfg = VisionConfig(**TINY_VISION)
    encoder = Blip2VisionModel(Blip2VisionConfig(
        hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size, num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads, image_size=cfg.image_size, patch_size=cfg.patch_size,
        layer_norm_eps=cfg.layer_norm_eps, qkv_bias=True, initializer_range=0.02))
    encoder.save_pretrained(tmp_path / "vision")
    model = registry.get("model", "blip2_video_opt")(
        vision=cfg, qformer=QFormerConfig(**TINY_QFORMER),
        language=LanguageConfig(config=TINY_OPT, tokenizer=str(tokenizers["opt"])),
        vision_weights=str(tmp_path / "vision"), random_init=True)
    saved = encoder.state_dict()
    loaded = model.vision.model.state_dict()
    assert loaded.keys() == saved.keys() and all(torch.equal(loaded[k], saved[k]) for k in saved)
    for folder, error, message in (("absent", FileNotFoundError, "model.vision_weights"),
                                   ("vision", ValueError, "patch_size 14 [(]configured 7[)]")):
        with pytest.raises(error, match=message):
            registry.get("model", "blip2_video_opt")(
                vision=VisionConfig(**{**TINY_VISION, "patch_size": 7} if folder == "vision" else TINY_VISION),
                qformer=QFormerConfig(**TINY_QFORMER),
                language=LanguageConfig(config=TINY_OPT, tokenizer=str(tokenizers["opt"])),
                vision_weights=str(tmp_path / folder), random_init=True)


@pytest.mark.parametrize("project_encoder", [False, True], ids=["fresh_cross_attention", "projection"])
def test_timesformer_variant_loads_k400_and_blip2_weights(tokenizers, tmp_path, project_encoder, caplog):
    from transformers import TimesformerConfig, TimesformerForVideoClassification

    torch.manual_seed(2)
    k400 = TimesformerForVideoClassification(TimesformerConfig(
        image_size=28, patch_size=14, num_frames=2, hidden_size=24, intermediate_size=48, num_hidden_layers=2,
        num_attention_heads=4, num_labels=5))
    k400.save_pretrained(tmp_path / "timesformer")
    hf_twin("opt", tmp_path)
    vision = VisionConfig(arch="timesformer", image_size=28, patch_size=14, num_frames=2, hidden_size=24,
                          intermediate_size=48, num_layers=2, num_heads=4)
    qformer = QFormerConfig(**TINY_QFORMER, encoder_hidden_size=32 if project_encoder else None,
                            project_encoder=project_encoder)
    with caplog.at_level(logging.INFO):
        model = registry.get("model", "blip2_timesformer")(
            vision=vision, qformer=qformer, language=LanguageConfig(tokenizer=str(tokenizers["opt"])),
            pretrained=str(tmp_path / "hf"), vision_weights=str(tmp_path / "timesformer"))
    assert "start untrained" in caplog.text
    assert torch.equal(model.vision.model.embeddings.patch_embeddings.projection.weight,
                       k400.timesformer.embeddings.patch_embeddings.projection.weight)
    assert (model.qformer.encoder_proj is not None) == project_encoder
    tokens = model.vision(video(2, 2))
    assert tokens.shape == (2, 1, 1 + 2 * 4, 24)  # CLS + frames x patches, one space-time sequence
    losses = train_steps(model, {"video": video(2, 2), "text_input": CAPTIONS}, 6)
    assert losses[-1] < losses[0]


def test_lora_trains_only_adapters_and_round_trips(tokenizers, tmp_path):
    from lavis.models.blip2_video.config import LoraConfig

    model = build("t5", tokenizers, lora=LoraConfig(r=4, alpha=8, dropout=0.0, target_modules=["q", "v"]))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any("lora_A" in n for n in trainable)
    assert not any(n.startswith("language.") and "lora_" not in n for n in trainable)
    train_steps(model, {"video": video(), "text_input": CAPTIONS}, 3, lr=1e-2)
    model.eval()
    model.save_pretrained(tmp_path / "lora")
    again = registry.get("model", "blip2_video_t5").from_pretrained(str(tmp_path / "lora")).eval()
    clips = video(2, 2)
    assert model.generate({"video": clips}, max_length=5) == again.generate({"video": clips}, max_length=5)


@pytest.mark.parametrize("arch,model_type,vision_m,qformer_m", [
    ("blip2_video_opt", "pretrain_opt2.7b", 985.95, 105.16),  # EVA ViT-g/14 (39 layers), Q-Former
    ("blip2_video_t5", "pretrain_flant5xl", 985.95, 105.16),
    ("blip2_video_vicuna_instruct", "vicuna7b", 985.95, 185.68),  # with text embeddings and FFN
    ("blip2_timesformer", "pretrain", 121.26, 106.24),  # TimeSformer-B; + Linear(768 -> 1408)
])
def test_default_configs_describe_the_real_sizes(arch, model_type, vision_m, qformer_m):
    from lavis.common.config import model_config
    from lavis.models.blip2_video.qformer import QFormer
    from lavis.models.blip2_video.vision import VisionEncoder

    section, preprocess = model_config(arch, model_type)
    with torch.device("meta"):
        vision = VisionEncoder(section["vision"])
        qformer = QFormer(section["qformer"], vision.width)
    assert sum(p.numel() for p in vision.parameters()) / 1e6 == pytest.approx(vision_m, abs=0.01)
    assert sum(p.numel() for p in qformer.parameters()) / 1e6 == pytest.approx(qformer_m, abs=0.01)
    assert set(preprocess.vis_processor) == {"train", "eval"}


def test_load_model_api(tokenizers, tmp_path, monkeypatch):
    from lavis.models import load_model, load_model_and_preprocess

    monkeypatch.setenv("LAVIS_CACHE_ROOT", str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError, match=r"blip2-opt-2.7b does not exist \(set by 'model.pretrained'\)"):
        load_model("blip2_video_opt", "pretrain_opt2.7b")
    tiny = dict(
        pretrained=None, random_init=True, vision={**TINY_VISION, "precision": "fp32"}, qformer=TINY_QFORMER,
        language={"config": TINY_OPT, "tokenizer": str(tokenizers["opt"]), "precision": "fp32"},
    )
    model, vis, txt = load_model_and_preprocess("blip2_video_opt", "pretrain_opt2.7b", **tiny)
    assert not model.training and model.language.cfg.prompt == "a video of"
    assert vis["eval"].image_size == 224 and vis["eval"].n_frms == 8 and txt["eval"]("A Man.") == "a man"
    assert isinstance(load_model("blip2_video_opt", **tiny, is_eval=False).vision.model.embeddings.patch_embedding,
                      torch.nn.Conv2d)


def test_frozen_parts_stay_in_eval_and_checkpointing_keeps_gradients(tokenizers):
    model = build("opt", tokenizers)
    model.train()
    assert not model.vision.training and not model.language.model.training and model.qformer.training
    name, kind, lm = HEADS["opt"]

    def grads(checkpointing: bool):
        torch.manual_seed(0)
        m = registry.get("model", name)(
            vision=VisionConfig(**TINY_VISION, freeze=False, grad_checkpointing=checkpointing),
            qformer=QFormerConfig(**TINY_QFORMER), random_init=True,
            language=LanguageConfig(kind=kind, config=lm, tokenizer=str(tokenizers["opt"])))
        m.train()  # HF checkpoints only in training mode; the same seed gives the same dropout
        assert m.vision.model.encoder.gradient_checkpointing == checkpointing
        torch.manual_seed(1)
        m({"video": video(), "text_input": CAPTIONS})["loss"].backward()
        return m.vision.model.embeddings.patch_embedding.weight.grad

    torch.testing.assert_close(grads(True), grads(False))
    half = build("opt", tokenizers)
    half.vision = half.vision.__class__(VisionConfig(**TINY_VISION, precision="bf16"))
    assert half.encode(video()).dtype == torch.float32  # the Q-Former always sees float32 tokens


@pytest.mark.parametrize("arch", ["eva_vit_g", "timesformer"])
def test_random_init_gives_every_weight_matrix_a_usable_scale(tokenizers, arch):
    """A model trained from scratch (the shapes captioner) must not start from near-zero weights
    (transformers initialises BLIP-2's ViT with std 1e-10, expecting pretrained weights)."""
    name, kind, lm = HEADS["opt"]
    torch.manual_seed(0)
    model = registry.get("model", name)(
        vision=VisionConfig(**{**TINY_VISION, "arch": arch}), qformer=QFormerConfig(**TINY_QFORMER),
        language=LanguageConfig(kind=kind, config=lm, tokenizer=str(tokenizers["opt"])), random_init=True,
    )
    layers = (torch.nn.Linear, torch.nn.Conv2d, torch.nn.Conv3d, torch.nn.Embedding)
    tiny = {n: m.weight.std().item() for n, m in model.named_modules() if isinstance(m, layers) and m.weight.std() < 1e-3}
    assert not tiny, f"weights initialised near zero: {tiny}"

