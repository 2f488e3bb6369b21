"""``--model tiny``: seeded random-weight models built in-process (no download), for trying the
pipeline anywhere and for tests. Random weights draw no imagery: the tiny model draws soft
abstract fields over its base picture, which move with the weighted word.

With diffusers' default initialisation a random UNet barely reacts to its text (under 1/255 of
pixel change between token weights 0 and 2.5), few-step latents leave the decoder's range and
the output is pixel noise. So the tiny model is built to be legible:
- the scheduler predicts the clean sample (``prediction_type="sample"``), so the final latents
  are the UNet's output, bounded and in the decoder's range, after any number of steps;
- every spatial kernel is a blur, and a "picture path" carries the base picture (``--image``, the
  demo's picture) through the VAE and the UNet unchanged, so quiet frames show the picture;
- the text encoder reads each token alone (no attention between tokens, no positions), so the
  padding after a prompt says nothing and the weighted word's field is not drowned by it;
- the last transformer adds its cross-attention output to that path: the weighted word lays a
  smooth field over the picture, the further the louder the sound.
Tokenizers are written locally from a byte alphabet (one token per character), so a word is
several tokens, as long words are in the real CLIP tokenizer.
"""

from __future__ import annotations

import math

import torch

TINY_SEED = 0
_SPECIAL_CLIP = ("<|startoftext|>", "<|endoftext|>")
CROSS_GAIN = 6.0
TINY_TAESD_GAIN = 4.0
UNET_IN_KERNEL = 5
LATENT_STD = 3.0
DECODER_PICTURE_GAIN = 0.5
TEXT_GAIN = 4.0
NULL_REL = 0.05
ATTN_SHARPNESS = 16.0
PICTURE_BLUR = 3  # binomial kernel on the picture path into the UNet


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
        cross_attention_dim=32, attention_head_dim=8, norm_num_groups=8, conv_in_kernel=UNET_IN_KERNEL,
    ).eval()  # type: ignore[attr-defined]
    torch.manual_seed(seed + 2)
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(32, 32, 32),
        down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
        layers_per_block=1, norm_num_groups=8, sample_size=64,
    ).eval()  # type: ignore[attr-defined]
    with torch.no_grad():
        _tokenwise(text_encoder)
        empty = text_encoder(tokenizer("", padding="max_length", max_length=77, return_tensors="pt").input_ids)[0]
        _legible_unet(unet, empty[0])
        _legible_vae(vae)
    scheduler = EulerDiscreteScheduler(
        num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
        prediction_type="sample", timestep_spacing="trailing",
    )
    return {"unet": unet, "vae": vae, "text_encoder": text_encoder, "tokenizer": tokenizer, "scheduler": scheduler}


# ---------------------------------------------------------------- legible random weights
# P channels run through every network unchanged ("the picture path"): the VAE encodes the
# picture's colours into latent channels 0..3, the UNet passes them (low-passed) to its output
# and the decoder upsamples them smoothly back to colours. Everything else stays random, with
# every spatial kernel reduced to (its random sum) x (a binomial blur), and writes only to the
# other channels, so the random part (which carries the text) is a smooth field added to the
# picture. The last group norms keep the picture path in SiLU's linear range.
P = 4
_LIN_SCALE, _LIN_SHIFT = 0.5, 3.0  # GroupNorm affine on the picture path: SiLU(3 + 0.5 z), about linear


def _binomial(k: int) -> torch.Tensor:
    row = torch.tensor([math.comb(k - 1, i) for i in range(k)], dtype=torch.float32)
    return torch.outer(row, row) / row.sum() ** 2


def _centred(kernel: torch.Tensor, size: int) -> torch.Tensor:
    """``kernel`` in the middle of a ``size`` x ``size`` one."""
    out = torch.zeros(size, size)
    o = (size - kernel.shape[0]) // 2
    out[o : o + kernel.shape[0], o : o + kernel.shape[1]] = kernel
    return out


def _smooth_kernels(module: torch.nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, torch.nn.Conv2d) and m.kernel_size[0] > 1:
            m.weight.copy_(m.weight.sum((2, 3), keepdim=True) * _binomial(m.kernel_size[0]))


def _pass(conv: torch.nn.Conv2d, cols: range, kernel: torch.Tensor | None = None) -> None:
    """Output channel i (< P) of ``conv`` copies input channel ``cols[i]`` through ``kernel`` (a delta)."""
    w = conv.weight
    w[:P] = 0
    if kernel is None:
        kernel = torch.zeros(w.shape[2:])
        kernel[w.shape[2] // 2, w.shape[3] // 2] = 1
    for i, c in enumerate(cols):
        w[i, c] = kernel
    if conv.bias is not None:
        conv.bias[:P] = 0


def _keep(layer: torch.nn.Module) -> None:
    """A residual branch that leaves the picture channels alone."""
    layer.weight[:P] = 0  # type: ignore[index,operator]
    if layer.bias is not None:  # type: ignore[union-attr]
        layer.bias[:P] = 0  # type: ignore[index,operator]


def _linear_out(norm: torch.nn.GroupNorm, conv: torch.nn.Conv2d, rows: range, gain: float) -> None:
    """After ``norm`` and SiLU, ``conv`` outputs ``gain`` x the normalised picture channels on ``rows``."""
    norm.weight[:P] = _LIN_SCALE
    norm.bias[:P] = _LIN_SHIFT
    s = torch.sigmoid(torch.tensor(_LIN_SHIFT))
    value, slope = float(_LIN_SHIFT * s), float(s * (1 + _LIN_SHIFT * (1 - s))) * _LIN_SCALE
    w = conv.weight
    w[:, :P] = 0
    k = w.shape[-1] // 2
    for i, c in zip(rows, range(P), strict=False):
        w[i, c, k, k] = gain / slope  # a delta: a wider kernel would read the zero padding after SiLU
        if conv.bias is not None:
            conv.bias[i] = -gain * value / slope


def _resnets_keep(resnets, cols_of) -> None:
    for j, r in enumerate(resnets):
        _keep(r.conv2)
        if r.conv_shortcut is not None:
            _pass(r.conv_shortcut, cols_of(j, r))


def _tokenwise(text_encoder) -> None:
    """Each token's embedding depends on its character alone: no position, no token reads another.

    The prompt's padding (end-of-text tokens) then embeds exactly as the empty prompt's does, and the
    empty prompt spans two directions only (start, end), so removing them from the values (below)
    silences the padding and leaves the words' values whole. Measured on three pictures and ten words
    at 128 px: with token mixing, the 60 padding tokens carried a copy of the prompt and drew a field
    larger than the word's (a quiet frame of a night city correlated 0.05-0.4 with it); with positions
    kept, the padding spanned half the space and its removal took half of each word's field with it.
    """
    text_encoder.embeddings.position_embedding.weight.zero_()
    for layer in text_encoder.encoder.layers:
        layer.self_attn.out_proj.weight.zero_()
        layer.self_attn.out_proj.bias.zero_()


def _legible_unet(unet, empty: torch.Tensor) -> None:
    _smooth_kernels(unet)
    for name, module in unet.named_modules():
        if name.endswith("attn2"):
            module.to_out[0].weight.mul_(CROSS_GAIN)
    unet.conv_out.weight.zero_()  # only the picture channels reach the latents (set below)
    # a light blur on the way in: without --image the seed's latent noise comes out as soft fields (mean step
    # between pixels at 64 px: 8; 15 with no blur, blotches), while a picture's fine detail survives (a night
    # city's quiet frames correlate 0.64 with it at 128 px; 0.61 with the 5x5 blur, 0.69 with none)
    _pass(unet.conv_in, range(P), _centred(_binomial(PICTURE_BLUR), unet.conv_in.kernel_size[0]))
    first, last = unet.down_blocks[0], unet.up_blocks[-1]
    skip = unet.config.block_out_channels[0]
    _resnets_keep(first.resnets, lambda j, r: range(P))
    # the last up block's first resnet takes [upsampled low-res path, skip]: the picture is in the skip
    _resnets_keep(last.resnets, lambda j, r: range(P) if j else range(r.conv_shortcut.in_channels - skip,
                                                                      r.conv_shortcut.in_channels - skip + P))
    for t in (*first.attentions, *last.attentions[:-1]):
        _keep(t.proj_out)
    _text_into_picture(last.attentions[-1], empty)
    _linear_out(unet.conv_norm_out, unet.conv_out, range(P), LATENT_STD)


def _text_into_picture(t, empty: torch.Tensor) -> None:
    """The last full-resolution transformer adds its cross-attention output (only) to the picture.

    Its inner channels are split: the input projection, self-attention and feed-forward write the
    first half, cross-attention the second, and the output projection's picture rows read the
    second half. With value scaling that output is ``S + w T`` (the other tokens' part plus the
    weighted word's part), so the louder the sound, the further the picture is pushed away.
    """
    block = t.transformer_blocks[0]
    half = t.proj_in.out_channels // 2
    # the queries do not read the picture: the word's field is then a field of its own laid over the
    # picture (the picture departs), not a function of the picture (which only changed its contrast)
    t.proj_in.weight[:, :P] = 0
    for layer in (t.proj_in, block.attn1.to_out[0], block.ff.net[2]):
        layer.weight[half:] = 0
        if layer.bias is not None:
            layer.bias[half:] = 0
    # what the empty prompt's tokens (start, end, padding) say is removed from the values: only
    # the prompt's words move the picture; attention is sharpened so that they do so in places
    u, sv, _ = torch.linalg.svd((empty - empty.mean(0)).T @ (empty - empty.mean(0)) + torch.outer(empty.mean(0), empty.mean(0)))
    basis = u[:, : int((sv > sv[0] * NULL_REL).sum())]
    block.attn2.to_v.weight.copy_(block.attn2.to_v.weight @ (torch.eye(basis.shape[0]) - basis @ basis.T))
    block.attn2.to_q.weight.mul_(ATTN_SHARPNESS)
    cross = block.attn2.to_out[0]
    cross.weight[:half] = 0
    if cross.bias is not None:
        cross.bias[:half] = 0
    w = t.proj_out.weight
    w[:P, :half] = 0
    # the same field in every picture channel (its mean is then removed by the group norm after it:
    # no colour cast). Measured: a per-channel colour part on top made loud frames depart less from
    # the picture and two different pictures come out more alike
    w[:P, half:] = TEXT_GAIN * w[P : P + 1, half:]
    t.proj_out.bias[:P] = 0


def _legible_vae(vae) -> None:
    _smooth_kernels(vae)
    enc, dec = vae.encoder, vae.decoder
    # encoder: RGB and their mean into channels 0..3, averaged down 2x2 per level
    enc.conv_in.weight[:P] = 0
    for i in range(3):
        enc.conv_in.weight[i, i, 1, 1] = 1
        enc.conv_in.weight[3, i, 1, 1] = 1 / 3
    enc.conv_in.bias[:P] = 0
    avg = torch.zeros(3, 3)
    avg[:2, :2] = 0.25
    for block in enc.down_blocks:
        _resnets_keep(block.resnets, lambda j, r: range(P))
        for d in block.downsamplers or ():
            _pass(d.conv, range(P), avg)
    for block in (enc.mid_block, dec.mid_block):
        _resnets_keep(block.resnets, lambda j, r: range(P))
        for a in block.attentions:
            _keep(a.to_out[0])
    _linear_out(enc.conv_norm_out, enc.conv_out, range(P), LATENT_STD / vae.config.scaling_factor)
    _pass(vae.quant_conv, range(P))
    # decoder: latents 0..3 straight in, upsampled smoothly (nearest then [1 2 1]^2: bilinear), out as RGB
    _pass(vae.post_quant_conv, range(P))
    _pass(dec.conv_in, range(P))
    for block in dec.up_blocks:
        _resnets_keep(block.resnets, lambda j, r: range(P))
        for u in block.upsamplers or ():
            _pass(u.conv, range(P), _binomial(3))
    dec.conv_out.weight.zero_()  # only the picture channels reach the colours (set below)
    _linear_out(dec.conv_norm_out, dec.conv_out, range(3), DECODER_PICTURE_GAIN)


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
