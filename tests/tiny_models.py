"""Tiny random BLIP-2 pieces and tokenizers trained in the test (no downloads)."""

from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

WORDS = (
    "a video of the man woman dog cat red blue green circle square triangle moves left right up down "
    "grows shrinks is playing singing on stage ball slides what does happen in describe"
).split()


def make_tokenizer(directory: Path, style: str) -> Path:
    """A word-level tokenizer saved as a transformers folder.

    ``opt``: BOS ``</s>`` prepended (OPT's convention); ``t5``: ``</s>`` appended; ``llama``:
    ``<s>`` prepended, no pad token; ``bert``: ``[CLS] ... [SEP]`` (the Q-Former's).
    """
    if style == "bert":
        specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    elif style == "llama":
        specials = ["<unk>", "<s>", "</s>"]
    else:
        specials = ["<pad>", "<unk>", "</s>", "<s>"]
    vocab = {tok: i for i, tok in enumerate(specials + WORDS)}
    unk = "[UNK]" if style == "bert" else "<unk>"
    tok = Tokenizer(models.WordLevel(vocab, unk_token=unk))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    if style == "opt":
        tok.post_processor = processors.TemplateProcessing(single="</s> $A", special_tokens=[("</s>", vocab["</s>"])])
        kwargs = dict(bos_token="</s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>")
    elif style == "t5":
        tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", vocab["</s>"])])
        kwargs = dict(eos_token="</s>", pad_token="<pad>", unk_token="<unk>")
    elif style == "llama":
        tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", vocab["<s>"])])
        kwargs = dict(bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    else:
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
        kwargs = dict(cls_token="[CLS]", sep_token="[SEP]", pad_token="[PAD]", unk_token="[UNK]", mask_token="[MASK]")
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, **kwargs)
    fast.save_pretrained(directory)
    return directory


VOCAB = 5 + len(WORDS) + 8  # room for an image placeholder token

TINY_VISION = dict(image_size=28, patch_size=14, hidden_size=32, intermediate_size=64, num_layers=2, num_heads=4)
TINY_QFORMER = dict(num_query_tokens=4, hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64,
                    vocab_size=64, max_position_embeddings=64)
TINY_OPT = dict(model_type="opt", vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, ffn_dim=64,
                num_attention_heads=4, max_position_embeddings=128, word_embed_proj_dim=32,
                bos_token_id=2, eos_token_id=2, pad_token_id=0, dropout=0.0, attention_dropout=0.0)
TINY_T5 = dict(model_type="t5", vocab_size=VOCAB, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
               decoder_start_token_id=0, eos_token_id=2, pad_token_id=0, dropout_rate=0.0,
               feed_forward_proj="gated-gelu", tie_word_embeddings=False)
TINY_LLAMA = dict(model_type="llama", vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=128,
                  bos_token_id=1, eos_token_id=2, pad_token_id=0)


def byte_bpe(specials: list[str], extra_text: str, unk: str | None = None) -> Tokenizer:
    """A small byte-level BPE (any text, no unknowns) whose special tokens stay whole."""
    from tokenizers import decoders, trainers

    tok = Tokenizer(models.BPE(unk_token=unk))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([" ".join(WORDS) + " " + extra_text] * 10, trainer)
    tok.add_special_tokens(specials)
    return tok


def make_tiny_llava(folder: Path) -> Path:
    """A tiny random LLaVA (CLIP vision tower + LLaMA) with its processor and chat template, saved
    as a transformers folder, loadable with AutoModelForImageTextToText / AutoProcessor."""
    import torch
    from transformers import (
        AutoModelForImageTextToText, CLIPImageProcessorPil, CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaProcessor,
    )

    specials = ["<unk>", "<s>", "</s>", "<pad>", "<image>"]
    tok = byte_bpe(specials, "USER ASSISTANT describe this video in detail", unk="<unk>")
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                        unk_token="<unk>", extra_special_tokens={"image_token": "<image>"})
    template = (
        "{% for m in messages %}{{ m['role'].upper() }}: {% for c in m['content'] %}"
        "{% if c['type'] == 'image' %}<image>\n{% else %}{{ c['text'] }}{% endif %}{% endfor %}\n{% endfor %}"
        "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
    )
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessorPil(size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28}),
        tokenizer=tokenizer, patch_size=14, vision_feature_select_strategy="default",
        num_additional_image_tokens=1, chat_template=template,
    )
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                       num_attention_heads=2, image_size=28, patch_size=14),
        text_config=LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                                pad_token_id=tokenizer.pad_token_id),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"), vision_feature_layer=-1,
    )
    torch.manual_seed(0)
    AutoModelForImageTextToText.from_config(config).save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def make_tiny_qwen2_audio(folder: Path) -> Path:
    """A tiny random Qwen2-Audio (Whisper-style encoder + Qwen2) with its processor and chat template."""
    import torch
    from transformers import AutoModelForSeq2SeqLM, Qwen2AudioConfig, Qwen2AudioProcessor, WhisperFeatureExtractor

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|audio_bos|>", "<|AUDIO|>", "<|audio_eos|>"]
    tok = byte_bpe(specials, "describe the sounds user assistant")
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
        extra_special_tokens={"audio_token": "<|AUDIO|>", "audio_bos_token": "<|audio_bos|>", "audio_eos_token": "<|audio_eos|>"},
    )
    template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% for c in m['content'] %}"
        "{% if c['type'] == 'audio' %}<|audio_bos|><|AUDIO|><|audio_eos|>{% else %}{{ c['text'] }}{% endif %}"
        "{% endfor %}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    processor = Qwen2AudioProcessor(feature_extractor=WhisperFeatureExtractor(feature_size=80, sampling_rate=16000),
                                    tokenizer=tokenizer, chat_template=template)
    config = Qwen2AudioConfig(
        audio_config=dict(d_model=32, encoder_layers=1, encoder_attention_heads=2, encoder_ffn_dim=64, num_mel_bins=80),
        text_config=dict(model_type="qwen2", vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2),
        audio_token_index=tokenizer.convert_tokens_to_ids("<|AUDIO|>"),
    )
    torch.manual_seed(0)
    AutoModelForSeq2SeqLM.from_config(config).save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def make_tiny_grounding_dino(folder: Path) -> Path:
    """A tiny random Grounding DINO (Swin + BERT) with its processor (PIL image processor)."""
    import torch
    from transformers import (
        AutoModelForZeroShotObjectDetection, BertConfig, GroundingDinoConfig, GroundingDinoImageProcessorPil,
        GroundingDinoProcessor, SwinConfig,
    )

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = {t: i for i, t in enumerate(specials + WORDS + ["."])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, cls_token="[CLS]", sep_token="[SEP]", pad_token="[PAD]",
                                        unk_token="[UNK]", mask_token="[MASK]")
    processor = GroundingDinoProcessor(
        image_processor=GroundingDinoImageProcessorPil(size={"shortest_edge": 64, "longest_edge": 96}), tokenizer=tokenizer)
    config = GroundingDinoConfig(
        backbone_config=SwinConfig(image_size=64, patch_size=4, embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2],
                                   window_size=4, out_features=["stage2", "stage3", "stage4"]),
        text_config=BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                               intermediate_size=64, max_position_embeddings=64),
        d_model=32, encoder_layers=1, decoder_layers=2, encoder_ffn_dim=64, decoder_ffn_dim=64, encoder_attention_heads=2,
        decoder_attention_heads=2, num_queries=20, num_feature_levels=4, encoder_n_points=2, decoder_n_points=2,
        max_text_len=32,
    )
    torch.manual_seed(0)
    AutoModelForZeroShotObjectDetection.from_config(config).save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def make_tiny_sam(folder: Path) -> Path:
    """A tiny random SAM with its (PIL) processor, 64 px input."""
    import torch
    from transformers import (
        SamConfig, SamImageProcessorPil, SamMaskDecoderConfig, SamModel, SamProcessor, SamPromptEncoderConfig,
        SamVisionConfig,
    )

    processor = SamProcessor(image_processor=SamImageProcessorPil(
        size={"longest_edge": 64}, pad_size={"height": 64, "width": 64}, mask_size={"longest_edge": 16},
        mask_pad_size={"height": 16, "width": 16}))
    config = SamConfig(
        vision_config=SamVisionConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, mlp_dim=64, image_size=64,
                                      patch_size=16, output_channels=16, window_size=2, global_attn_indexes=[0],
                                      num_pos_feats=8),
        prompt_encoder_config=SamPromptEncoderConfig(hidden_size=16, image_size=64, patch_size=16, mask_input_channels=4),
        mask_decoder_config=SamMaskDecoderConfig(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, mlp_dim=32,
                                                 iou_head_hidden_dim=16),
    )
    torch.manual_seed(0)
    SamModel(config).save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder
