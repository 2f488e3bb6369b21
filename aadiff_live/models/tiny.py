"""``--model tiny``: seeded random-weight models built in-process (no download), for trying the
pipeline anywhere and for tests. They draw noise, not pictures: noise that moves with the sound.

With diffusers' default initialisation a random UNet barely reacts to its text (under 1/255 of
pixel change between token weights 0 and 2.5) and few-step latents leave the decoder's range.
So the tiny model is designed to be legible:
- the scheduler predicts the clean sample (``prediction_type="sample"``), so the final latents
  are the UNet's output, bounded and in the decoder's range, after any number of steps;
- the cross-attention output projections are scaled up, so the text (and the reweighted
  tokens) drive the picture rather than being a rounding error against the residual path;
- the decoder's last convolution is scaled so that its output spans the visible range.
Tokenizers are written locally from a byte alphabet (one token per character), so a word is
several tokens, as long words are in the real CLIP tokenizer.
"""

from __future__ import annotations

import torch

TINY_SEED = 0
_SPECIAL_CLIP = ("<|startoftext|>", "<|endoftext|>")
CROSS_GAIN = 6.0
DECODER_GAIN = 4.0
UNET_OUT_GAIN = 3.0
TINY_TAESD_GAIN = 4.0


def _byte_alphabet() -> list[str]:
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    return list(bytes_to_unicode().values())


def tiny_clip_tokenizer():
    from transformers import CLIPTokenizer

    chars = _byte_alphabet()
    vocab: dict[str, int] = {}
    for t in [*chars, *(c + "</w>" for c in chars), *_SPECIAL_CLIP]:
        vocab.setdefault(t, len(vocab))
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)


def tiny_roberta_tokenizer():
    from transformers import RobertaTokenizer

    chars = _byte_alphabet()
    vocab: dict[str, int] = {}
    for t in ["<s>", "<pad>", "</s>", "<unk>", *chars, "<mask>"]:
        vocab.setdefault(t, len(vocab))
    return RobertaTokenizer(vocab=vocab, merges=[], model_max_length=77)


def build_tiny_diffusion(seed: int = TINY_SEED) -> dict:
    """UNet, VAE, text encoder, tokenizer and scheduler, seeded; the same every call."""
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    tokenizer = tiny_clip_tokenizer()
    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=4, max_position_embeddings=77,
            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    ).eval()  # type: ignore[attr-defined]
    torch.manual_seed(seed + 1)
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1,
        block_out_channels=(32, 64),
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32, attention_head_dim=8, norm_num_groups=8,
    ).eval()  # type: ignore[attr-defined]
    torch.manual_seed(seed + 2)
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(16, 32, 32),
        down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
        layers_per_block=1, norm_num_groups=8, sample_size=64,
    ).eval()  # type: ignore[attr-defined]
    with torch.no_grad():
        for name, module in unet.named_modules():
            if name.endswith("attn2"):
                module.to_out[0].weight.mul_(CROSS_GAIN)
        unet.conv_out.weight.mul_(UNET_OUT_GAIN)
        vae.decoder.conv_out.weight.mul_(DECODER_GAIN)
    scheduler = EulerDiscreteScheduler(
        num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
        prediction_type="sample", timestep_spacing="trailing",
    )
    return {"unet": unet, "vae": vae, "text_encoder": text_encoder, "tokenizer": tokenizer, "scheduler": scheduler}


def build_tiny_clap(seed: int = TINY_SEED):
    """A seeded random ``ClapModel`` and a ``ClapProcessor`` with a locally written tokenizer."""
    from transformers import (
        ClapAudioConfig,
        ClapConfig,
        ClapFeatureExtractor,
        ClapModel,
        ClapProcessor,
        ClapTextConfig,
    )

    tokenizer = tiny_roberta_tokenizer()
    text_cfg = ClapTextConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64, max_position_embeddings=80, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
    )
    audio_cfg = ClapAudioConfig(
        spec_size=128, patch_size=4, patch_stride=(4, 4), num_mel_bins=64, window_size=4,
        patch_embeds_hidden_size=16, depths=[1, 1], num_attention_heads=[2, 2], hidden_size=32,
        enable_fusion=False, num_classes=4,
    )
    torch.manual_seed(seed + 3)
    model = ClapModel(ClapConfig(text_config=text_cfg.to_dict(), audio_config=audio_cfg.to_dict(), projection_dim=16)).eval()
    fe = ClapFeatureExtractor(feature_size=64, sampling_rate=48000, max_length_s=2, truncation="rand_trunc")
    processor = ClapProcessor(feature_extractor=fe, tokenizer=tokenizer)
    return model, processor


def build_tiny_vae_tiny(seed: int = TINY_SEED):
    """A random ``AutoencoderTiny`` (the TAESD architecture) sized for the tiny UNet's latents."""
    from diffusers import AutoencoderTiny

    torch.manual_seed(seed + 4)
    vae = AutoencoderTiny(
        encoder_block_out_channels=(16, 16, 16), decoder_block_out_channels=(16, 16, 16),
        num_encoder_blocks=(1, 1, 1), num_decoder_blocks=(1, 1, 1), latent_channels=4,
    ).eval()  # type: ignore[attr-defined]
    # Three decoder blocks upsample twice: scale factor 4, as the tiny KL VAE (64x64 from 16x16
    # latents). TAESD's decoder ends in [0, 1] (then mapped to [-1, 1]); with random weights its
    # last convolution lands near 0, i.e. a black frame: centre it at mid-grey and widen it.
    with torch.no_grad():
        last = vae.decoder.layers[-1]
        last.weight.mul_(TINY_TAESD_GAIN)
        last.bias.add_(0.5)
    return vae
