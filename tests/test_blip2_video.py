"""The composed BLIP-2 video captioner on tiny random configs (CPU, no downloads)."""

import logging

import pytest
import torch
from transformers import Blip2Config, Blip2ForConditionalGeneration

import lavis  # noqa: F401  (registration)
from lavis.common.checkpoint import CheckpointError
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
        language=LanguageConfig(kind=kind, tokenizer=str(tokenizers[head]), **{"config": lm, **language}),
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
                                   ("vision", CheckpointError, "patch_size 14 [(]configured 7[)]")):
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


TINY_TIMESFORMER = dict(image_size=28, patch_size=14, num_frames=2, hidden_size=24, intermediate_size=48,
                        num_hidden_layers=2, num_attention_heads=4)
TIMESFORMER_VISION = VisionConfig(arch="timesformer", image_size=28, patch_size=14, num_frames=2, hidden_size=24,
                                  intermediate_size=48, num_layers=2, num_heads=4)


def with_vision_weights(tokenizers, path, vision=TIMESFORMER_VISION, **kwargs):
    """A captioner whose vision encoder comes from ``path`` and whose other parts stay random."""
    arch = "blip2_timesformer" if vision.arch == "timesformer" else "blip2_video_opt"
    return registry.get("model", arch)(
        vision=vision, qformer=QFormerConfig(**TINY_QFORMER),
        language=LanguageConfig(config=TINY_OPT, tokenizer=str(tokenizers["opt"])),
        vision_weights=str(path), random_init=True, **kwargs)


@pytest.mark.parametrize("layout", ["TimesformerModel", "TimesformerForVideoClassification"])
def test_timesformer_vision_weights_give_the_transformers_features(tokenizers, tmp_path, layout):
    """Both folder layouts load, and the encoder's tokens are exactly transformers' last_hidden_state."""
    import transformers

    torch.manual_seed(3)
    saved = getattr(transformers, layout)(transformers.TimesformerConfig(**TINY_TIMESFORMER, num_labels=5)).eval()
    saved.save_pretrained(tmp_path / "timesformer")
    model = with_vision_weights(tokenizers, tmp_path / "timesformer").eval()
    encoder = saved if layout == "TimesformerModel" else saved.timesformer
    frames = video(2, 2)
    with torch.no_grad():
        expected = encoder(pixel_values=frames).last_hidden_state
        tokens = model.vision(frames)
    assert tokens.shape == (2, 1, *expected.shape[1:])
    assert torch.equal(tokens[:, 0], expected)  # the same modules and weights on the same input: bit-exact


def test_weights_that_match_no_key_are_an_error_saying_so(tokenizers, tmp_path):
    from safetensors.torch import load_file, save_file
    from transformers import TimesformerConfig, TimesformerModel

    TimesformerModel(TimesformerConfig(**TINY_TIMESFORMER)).save_pretrained(tmp_path / "other")
    state = load_file(tmp_path / "other" / "model.safetensors")
    save_file({f"backbone.{k}": v for k, v in state.items()}, tmp_path / "other" / "model.safetensors")
    with pytest.raises(CheckpointError, match=rf"set by 'model.vision_weights'\): none of its {len(state)} tensors "
                                              r"matches a weight of the vision part \(e.g. its key 'backbone\."):
        with_vision_weights(tokenizers, tmp_path / "other")
    torch.save({"head.weight": torch.zeros(2)}, tmp_path / "eva_vit_g.pth")
    with pytest.raises(CheckpointError, match="none of its 1 tensor matches .* 'head.weight'"):
        with_vision_weights(tokenizers, tmp_path / "eva_vit_g.pth", VisionConfig(**TINY_VISION))


def test_a_part_given_a_path_must_load_whole_even_with_random_init(tokenizers, tmp_path):
    """``random_init`` covers parts given no path, never a wrong or partial file for a part."""
    blip2, vit, _ = lavis_layout(hf_twin("opt", tmp_path).state_dict())  # hf_twin saves tmp_path / "hf"
    torch.save(vit, tmp_path / "eva_vit_g.pth")
    wider = VisionConfig(**{**TINY_VISION, "image_size": 42})  # 9 patches + CLS, not 4 + CLS
    with pytest.raises(CheckpointError, match=r"eva_vit_g.pth \(set by 'model.vision_weights'\): 1 tensor of "
                       r"another shape .*position_embedding: \[1, 5, 32\] in the file, \[1, 10, 32\] in the model"):
        with_vision_weights(tokenizers, tmp_path / "eva_vit_g.pth", wider)
    torch.save({k: v for k, v in vit.items() if not k.startswith("blocks.1.")}, tmp_path / "partial.pth")
    with pytest.raises(CheckpointError, match=r"tensors of the vision part not in .*partial.pth \(set by "
                                              r"'model.vision_weights'\) \(e.g. vision.model.encoder.layers.1."):
        with_vision_weights(tokenizers, tmp_path / "partial.pth", VisionConfig(**TINY_VISION))
    torch.save(blip2, tmp_path / "blip2.pth")  # holds the Q-Former, the projection and the ViT's last norm
    with pytest.raises(CheckpointError, match="tensors of the vision part not in .*blip2.pth"):
        registry.get("model", "blip2_video_opt")(
            vision=VisionConfig(**TINY_VISION), qformer=QFormerConfig(**TINY_QFORMER), random_init=True,
            language=LanguageConfig(config=TINY_OPT, tokenizer=str(tokenizers["opt"])),
            pretrained=str(tmp_path / "blip2.pth"))
    more_queries = QFormerConfig(**{**TINY_QFORMER, "num_query_tokens": 8})  # without random_init: no download advice
    with pytest.raises(CheckpointError,
                       match=r"qformer.query_tokens: \[1, 4, 32\] in the file, \[1, 8, 32\] in the model"):
        registry.get("model", "blip2_video_opt")(
            vision=VisionConfig(**TINY_VISION), qformer=more_queries,
            language=LanguageConfig(tokenizer=str(tokenizers["opt"])), pretrained=str(tmp_path / "hf"))


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


LORA_TARGETS = {"t5": ["q", "v"], "opt": ["q_proj", "v_proj"]}
LLM_DROPOUT = {"t5": {"dropout_rate": 0.5}, "opt": {"dropout": 0.5, "attention_dropout": 0.5}}


@pytest.mark.parametrize("head", list(LORA_TARGETS))
def test_lora_dropout_trains_while_the_frozen_llm_stays_in_eval(tokenizers, head):
    """After ``model.train()`` the adapters' dropout is on and the frozen LLM's own is off."""
    from lavis.models.blip2_video.config import LoraConfig

    lm = {**HEADS[head][2], **LLM_DROPOUT[head]}
    model = build(head, tokenizers, config=lm,
                  lora=LoraConfig(r=4, alpha=8, dropout=0.5, target_modules=LORA_TARGETS[head])).train()
    named = dict(model.language.named_modules())
    adapters = [m for n, m in named.items() if ".lora_dropout." in n]
    own = [m for n, m in named.items() if isinstance(m, torch.nn.Dropout) and ".lora_dropout." not in n]
    expected = {"t5": 12, "opt": 4}[head]  # T5: q, v of 2 encoder self-, 2 decoder self- and 2 cross-attentions
    assert len(adapters) == expected and all(m.training for m in adapters)
    assert not any(m.training for m in own)  # T5's dropout modules (OPT's dropout is functional)
    assert not model.vision.training and model.qformer.training

    prefix = torch.randn(2, TINY_QFORMER["num_query_tokens"], model.language.width)
    losses = lambda: [model.language.loss(prefix, CAPTIONS).item() for _ in range(2)]  # noqa: E731
    lora_b = [p for n, p in model.language.named_parameters() if "lora_B" in n]
    with torch.no_grad():
        for p in lora_b:
            p.normal_(std=1.0)  # LoRA starts as a no-op (B = 0); give it an effect dropout can vary
    first, second = losses()
    assert first != second  # the adapters' dropout draws anew each call
    with torch.no_grad():
        for p in lora_b:
            p.zero_()
    first, second = losses()
    assert first == second == model.eval().language.loss(prefix, CAPTIONS).item()  # no frozen dropout


def test_a_frozen_part_keeps_its_own_modules_in_eval_but_not_what_trains_in_it():
    """``keep_frozen_in_eval``: modules added to a frozen part after ``freeze`` (adapters) and
    modules whose parameters all train again follow ``train()``; the frozen part's own do not."""
    from torch import nn

    from lavis.models.blip2_video.parts import freeze, keep_frozen_in_eval

    def block() -> nn.Sequential:
        return nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5))

    frozen = nn.Sequential(block(), block(), nn.Dropout(0.5))
    root = nn.ModuleDict({"frozen": frozen, "head": block()})
    freeze(frozen)
    frozen[0].add_module("adapter", block())  # added afterwards, as get_peft_model does
    frozen[1].requires_grad_(True)  # made trainable again
    root.train()
    keep_frozen_in_eval(root)
    assert not frozen.training and not frozen[0].training and not frozen[0][1].training and not frozen[2].training
    assert all(m.training for m in frozen[0].adapter.modules())
    assert all(m.training for m in frozen[1].modules())
    assert root.training and all(m.training for m in root["head"].modules())


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

