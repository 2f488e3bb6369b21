"""CLIP, image and text: what ``aadiff-live evaluate`` scores each frame with (the paper's Fig. 4 measure).

The default is OpenAI's ``openai/clip-vit-large-patch14`` through transformers' ``CLIPModel``, loaded like every
other model here (a local folder, the hub cache, else the hub; :func:`~aadiff_live.models.loading.from_pretrained_cached`),
with its own image processor (the PIL one: torchvision is not a dependency). ``tiny`` builds a small seeded CLIP with
random weights in-process (the byte tokenizer of ``--model tiny``): it runs anywhere, for tests, and its scores mean
nothing.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from aadiff_live.errors import UserError
from aadiff_live.models.loading import ModelMissing, check_tokenizer, from_pretrained_cached

log = logging.getLogger(__name__)
TINY_CLIP_SIZE = 32  # the tiny CLIP's input images (pixels a side)


def build_tiny_clip(seed: int = 0):
    """``(model, tokenizer, image processor)``: a seeded random CLIP small enough for tests."""
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel

    from aadiff_live.models.tiny import tiny_clip_tokenizer

    tokenizer = tiny_clip_tokenizer()
    text = dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=4, max_position_embeddings=77, bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    vision = dict(image_size=TINY_CLIP_SIZE, patch_size=8, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=4)
    torch.manual_seed(seed)
    model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)).eval()
    size = TINY_CLIP_SIZE
    processor = CLIPImageProcessorPil(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
    return model, tokenizer, processor


def _features(out) -> torch.Tensor:
    return out.pooler_output if hasattr(out, "pooler_output") else out


class ClipScorer:
    """Cosine similarity of images to texts in CLIP's joint space."""

    def __init__(self, model_id: str, device: str | torch.device = "cpu") -> None:
        self.model_id = model_id
        self.device = torch.device(device)
        if model_id == "tiny":
            self.model, self.tokenizer, self.processor = build_tiny_clip()
        else:
            from transformers import CLIPImageProcessorPil, CLIPModel, CLIPTokenizer

            try:
                self.tokenizer = from_pretrained_cached(CLIPTokenizer, model_id, None)
                self.processor = from_pretrained_cached(CLIPImageProcessorPil, model_id, None)
                self.model = from_pretrained_cached(CLIPModel, model_id, None).eval()
            except ModelMissing:
                raise UserError(
                    f"CLIP model '{model_id}' is neither a local folder nor in the Hugging Face cache, and the hub is "
                    f"not reachable; on a machine with internet run `aadiff-live download --clip-model {model_id}`, "
                    f"or try the measure with --clip-model tiny (random weights)") from None
            check_tokenizer(self.tokenizer, model_id)
        self.model.to(self.device)
        self._texts: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def embed_texts(self, texts: list[str]) -> torch.Tensor:
        """``[n, dim]`` unit vectors, each text embedded once."""
        missing = [t for t in dict.fromkeys(texts) if t not in self._texts]
        if missing:
            tok = self.tokenizer(missing, padding="max_length", max_length=77, truncation=True, return_tensors="pt")
            emb = _features(self.model.get_text_features(input_ids=tok.input_ids.to(self.device),
                                                         attention_mask=tok.attention_mask.to(self.device)))
            for t, e in zip(missing, torch.nn.functional.normalize(emb.float(), dim=-1).cpu(), strict=True):
                self._texts[t] = e
        return torch.stack([self._texts[t] for t in texts])

    @torch.no_grad()
    def embed_images(self, frames: np.ndarray) -> torch.Tensor:
        """``[n, dim]`` unit vectors of ``n`` frames ``[n, h, w, 3]`` uint8."""
        pixels = self.processor(images=list(frames), return_tensors="pt").pixel_values
        w = next(self.model.parameters())
        emb = _features(self.model.get_image_features(pixel_values=pixels.to(self.device, w.dtype)))
        return torch.nn.functional.normalize(emb.float(), dim=-1).cpu()
