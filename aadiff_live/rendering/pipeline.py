"""The AADiff frame renderer: prepare a cached base once, then render one frame per weight.

Every frame starts from the same initial latents, runs the same timesteps and gets the same
injected noise (a generator re-seeded per frame), so frame t is a deterministic, continuous
function of the token weight ``w_t`` (docs/design.md §1.4, §3). Text embeddings are cached per prompt.
"""

from __future__ import annotations

import inspect
import logging
import math
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from aadiff_live.backends.base import Backend
from aadiff_live.errors import UserError
from aadiff_live.models.components import Components, text_length, vae_scale_factor
from aadiff_live.rendering.invert import (
    Inversion,
    check_invertible,
    ddim_scheduler,
    default_cache_dir,
    invert,
    photo_digest,
    torch_unet,
)
from aadiff_live.rendering.static import FastPath, ScaleBuffer, StaticGraph, ToImage
from aadiff_live.tokens.words import check_prompt

log = logging.getLogger(__name__)
MAX_BATCH_SHAPES = 8  # batch buffers kept (per base and batch size): the live base, a scene's, a short last batch

Point = float | Sequence[float]  # one weight, or one per routed word
Positions = Sequence[int] | Sequence[Sequence[int]]  # one group of token positions, or one per routed word


def is_grouped(positions: Positions) -> bool:
    """Whether ``positions`` is a list of groups (one per routed word) rather than one group."""
    return len(positions) > 0 and not isinstance(positions[0], int | np.integer)


def position_groups(positions: Positions) -> list[list[int]]:
    """``positions`` as a list of groups: ``[1, 2]`` -> ``[[1, 2]]``; ``[[1], [4, 5]]`` unchanged."""
    if is_grouped(positions):
        return [[int(p) for p in g] for g in positions]  # type: ignore[union-attr]
    return [[int(p) for p in positions]]  # type: ignore[arg-type]


def default_schedule(components: Components, steps: int | None, guidance: float | None) -> tuple[int, float]:
    """Steps and guidance by model family: turbo 1 step, LCM 4, tiny 2, others 25 with CFG 7.5."""
    name = components.name.lower()
    cls = type(components.scheduler).__name__
    if "turbo" in name:
        d_steps, d_guid = 1, 0.0
    elif "LCM" in cls or "lcm" in name:
        d_steps, d_guid = 4, 0.0
    elif components.is_tiny:
        d_steps, d_guid = 2, 0.0
    else:
        d_steps, d_guid = 25, 7.5
    return (steps or d_steps), (d_guid if guidance is None else guidance)


@dataclass
class BaseState:
    """What every frame shares: the cached base (docs/design.md §3)."""

    prompt: str
    embeddings: torch.Tensor  # [batch, 77, dim]: [uncond, cond] with guidance, [cond] without
    latents: torch.Tensor  # the initial (noised) latents
    timesteps: torch.Tensor
    begin_index: int
    n_train_steps: int  # argument to scheduler.set_timesteps
    # SDXL's extra UNet inputs, batched like ``embeddings``: pooled text embeddings [batch, dim] and
    # time ids [batch, 6] (original size, crop corner, target size); empty for SD 1.x/2.x
    added: tuple[torch.Tensor, ...] = ()
    # --invert: the text inputs of each step, [null-text embedding of that step, cond] (rendering/invert.py);
    # empty: ``embeddings`` at every step
    step_embeddings: tuple[torch.Tensor, ...] = ()
    nulls: torch.Tensor | None = None  # --invert: the per-step unconditional embeddings [steps, tokens, dim]


class SchedulerState:
    """The scheduler's state right after ``set_timesteps`` (prepare), restored before every frame.

    ``set_timesteps`` rebuilds the schedule (sigmas, timesteps: new tensors, and a device copy on a
    GPU); a frame only needs the step counter and the multistep history back at step 0. Schedulers
    keep that state in plain attributes (``_step_index``, ``model_outputs``, ``ets``, ``counter``,
    ...) and mutate only lists in place, so a snapshot of the attributes with lists copied restores
    any of them.
    """

    def __init__(self, scheduler) -> None:
        self._attrs = {k: (list(v) if type(v) is list else v) for k, v in vars(scheduler).items()}

    def restore(self, scheduler) -> None:
        vars(scheduler).update({k: (list(v) if type(v) is list else v) for k, v in self._attrs.items()})


MIN_IMAGE_PX = 32  # a smaller --image has too little in it to animate (it would be blown up many times)


def check_image(path: str) -> None:
    """Before any model loads: ``path`` is a readable picture at least :data:`MIN_IMAGE_PX` a side (one line)."""
    load_image(path, MIN_IMAGE_PX, MIN_IMAGE_PX)


def load_image(path: str, width: int, height: int) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as src:
            if min(src.size) < MIN_IMAGE_PX:
                raise UserError(f"image {path} is {src.size[0]}x{src.size[1]} pixels: too small to animate; pass a "
                                f"picture at least {MIN_IMAGE_PX} pixels a side to --image")
            im = src.convert("RGB")
            # cover-crop to the target aspect, then resize
            sw, sh = im.size
            scale = max(width / sw, height / sh)
            im = im.resize((max(width, round(sw * scale)), max(height, round(sh * scale))), Image.Resampling.LANCZOS)
            left = (im.width - width) // 2
            top = (im.height - height) // 2
            im = im.crop((left, top, left + width, top + height))
            return np.array(im)
    except FileNotFoundError:
        raise UserError(f"image {path} not found; check the path passed to --image") from None
    except (UnidentifiedImageError, OSError):
        raise UserError(f"cannot read {path} as an image; pass a JPEG or PNG to --image") from None


class Renderer:
    def __init__(self, components: Components, backend: Backend, *, width: int, height: int,
                 steps: int | None = None, guidance: float | None = None, seed: int = 0,
                 image: str | np.ndarray | None = None, strength: float | None = None,
                 static: bool | None = None, invert: bool = False, null_text: bool = True,
                 invert_cache: Path | None | bool = True) -> None:
        """``image`` (img2img) with ``strength`` (``model.strength``: how far it is noised).

        ``invert`` (with ``image``): the base is the image's null-text inversion instead (rendering/invert.py):
        the frame at weight 1 reproduces it. The model steps with DDIM then. ``null_text=False``: plain DDIM
        inversion (for measuring). ``invert_cache``: the folder of cached inversions (True: the default one,
        None: no cache).

        ``static``: run frames from buffers allocated once (token_scale written in place, the frame
        copied to one pinned host buffer), captured as CUDA graphs when the backend allows it
        (``backend.graphs``). Default: on for CUDA. On the CPU it is the same logic without capture.

        The renderer uses the components it is given: encoding a prompt moves the text encoder(s) to
        the render device, in place (the weights live where they run); nothing else in them changes."""
        self.c = components
        self.backend = backend
        self.device = backend.device
        self.dtype = backend.dtype
        self.width, self.height = width, height
        self.steps, self.guidance = default_schedule(components, steps, guidance)
        self.cfg = self.guidance > 1.0
        self._seed = int(seed)
        if image is not None and strength is None and not invert:
            raise ValueError("an image (img2img) needs a strength")
        if invert and image is None:
            raise UserError("--invert needs a photo: --image photo.jpg --invert")
        self.image = image
        self.strength = strength
        self.invert = invert
        self.null_text = null_text
        self.inversion: Inversion | None = None  # the last inversion (its stats: seconds, cache hit)
        if invert:
            check_invertible(components, self.steps, self.guidance)
            # rendering retraces the inversion: DDIM, in this renderer's own copy of the parts list (the models
            # stay shared; another renderer on the same components keeps the model's scheduler)
            self.c = components = replace(components, scheduler=ddim_scheduler(components.scheduler))
            self.invert_cache = default_cache_dir() if invert_cache is True else (invert_cache or None)
        vae_cfg = components.vae.config
        self.vae_scale = vae_scale_factor(components.vae)
        self.scaling_factor = float(getattr(vae_cfg, "scaling_factor", 1.0) or 1.0)
        self.shift_factor = float(getattr(vae_cfg, "shift_factor", 0.0) or 0.0)
        self.n_tokens = text_length(components.tokenizer)
        self._embed_cache: dict[str, tuple[torch.Tensor, torch.Tensor | None]] = {}
        self._step_takes_generator = "generator" in inspect.signature(components.scheduler.step).parameters
        self._base: BaseState | None = None
        self._sched_state = SchedulerState(components.scheduler)  # replaced by prepare()
        self.last_timing: dict[str, float] = {}
        self.static = self.device.type == "cuda" if static is None else static
        self.graphs = self.static and self.device.type == "cuda" and backend.graphs
        self._to_image = ToImage(backend.decode, self.scaling_factor, self.shift_factor, self.dtype)
        self._unet: Callable[..., torch.Tensor] = backend.unet
        self._image: Callable[[torch.Tensor], torch.Tensor] = self._to_image
        if self.static:
            if self.graphs:
                log.info("CUDA graphs: the first frame compiles and captures the UNet and decoder (about a "
                         "minute, once); --no-compile turns this off")
            self._unet = StaticGraph(backend.unet, capture=self.graphs)
            self._image = StaticGraph(self._to_image, capture=self.graphs)
        self.fast_path = FastPath(self._fell_back)
        if self.graphs or backend.eager_unet is not None:  # compiled or captured: eager stands by
            eager_unet = backend.eager_unet or backend.unet
            eager_image = ToImage(backend.eager_decode or backend.decode, self.scaling_factor, self.shift_factor,
                                  self.dtype)
            self._unet = self.fast_path.wrap(
                self._unet, StaticGraph(eager_unet, capture=False) if self.static else eager_unet, "the UNet")
            self._image = self.fast_path.wrap(
                self._image, StaticGraph(eager_image, capture=False) if self.static else eager_image, "the decoder")
        self._scale = ScaleBuffer(2 if self.cfg else 1, self.n_tokens, self.dtype, self.device)
        self._timesteps_dev: list[torch.Tensor] = []
        self._batches: dict[tuple[int, int], _Batch] = {}  # (id of a base, batch size) -> that batch's buffers
        self._host: torch.Tensor | None = None  # pinned frame buffer (CUDA)

    @property
    def seed(self) -> int:
        """The seed of the base noise and of every frame's injected noise (set through :meth:`prepare`)."""
        return self._seed

    @property
    def base(self) -> BaseState | None:
        """The prepared base (None before :meth:`prepare`)."""
        return self._base

    # ---------------------------------------------------------------- prompt and base
    @torch.no_grad()
    def _encode(self, text: str) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(hidden states [1, tokens, dim], pooled [1, dim] or None)``. SDXL: both text encoders'
        penultimate hidden states side by side, the second encoder's projected pooled output."""
        if text not in self._embed_cache:
            pairs = [(self.c.tokenizer, self.c.text_encoder)]
            if self.c.text_encoder_2 is not None:
                pairs.append((self.c.tokenizer_2, self.c.text_encoder_2))
            hidden, pooled = [], None
            for tokenizer, encoder in pairs:
                tok = tokenizer(text, padding="max_length", max_length=self.n_tokens, truncation=True,
                                return_tensors="pt")
                te = encoder.to(self.device)  # in place: see __init__
                if len(pairs) == 1:
                    hidden.append(te(tok.input_ids.to(self.device))[0])
                    continue
                out = te(tok.input_ids.to(self.device), output_hidden_states=True)
                hidden.append(out.hidden_states[-2])
                pooled = out[0] if out[0].ndim == 2 else pooled
            emb = torch.cat(hidden, dim=-1).to(self.dtype)
            if text == "" and self.c.extra.get("force_zeros_for_empty_prompt"):
                emb = torch.zeros_like(emb)
                pooled = None if pooled is None else torch.zeros_like(pooled)
            self._embed_cache[text] = (emb, None if pooled is None else pooled.to(self.dtype))
        return self._embed_cache[text]

    def _text(self, prompt: str) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """The UNet's text inputs for ``prompt``: embeddings (``[uncond, cond]`` with guidance) and
        SDXL's added inputs (pooled embeddings, time ids)."""
        cond, pooled = self._encode(prompt)
        rows = [self._encode(""), (cond, pooled)] if self.cfg else [(cond, pooled)]
        emb = torch.cat([r[0] for r in rows])
        if pooled is None:
            return emb, ()
        text_embeds = torch.cat([r[1] for r in rows if r[1] is not None])
        h, w = self.height, self.width
        time_ids = torch.tensor([[h, w, 0, 0, h, w]], dtype=self.dtype, device=self.device).expand(len(rows), 6)
        return emb, (text_embeds, time_ids)

    def _generator(self, offset: int = 0) -> torch.Generator:
        return torch.Generator(device="cpu").manual_seed(self._seed + offset)

    @torch.no_grad()
    def prepare(self, prompt: str, seed: int | None = None) -> BaseState:
        """Encode the prompt and build the base: initial latents, timesteps (img2img: noised image).

        A new prompt keeps the base's latents and timesteps (only the text changes); a new ``seed`` draws
        the base noise again from it."""
        prompt = check_prompt(prompt)
        if seed is not None and int(seed) != self._seed:
            self._seed, self._base = int(seed), None  # the base noise is drawn again from the new seed
        emb, added = self._text(prompt)
        if self._base is not None and self._base.prompt != prompt:
            # an inverted photo keeps its latent and null-text embeddings: a new prompt edits the photo
            b = self._base
            self._base = BaseState(prompt, emb, b.latents, b.timesteps, b.begin_index, b.n_train_steps, added,
                                   _with_nulls(emb, b.nulls), b.nulls)
            return self._base
        sched = self.c.scheduler
        shape = (1, self.c.unet.config.in_channels, self.height // self.vae_scale, self.width // self.vae_scale)
        noise = torch.randn(shape, generator=self._generator(), dtype=torch.float32)
        nulls = None
        if self.image is None:
            sched.set_timesteps(self.steps)
            timesteps = sched.timesteps.clone()
            latents = noise * float(sched.init_noise_sigma)
            begin, total = 0, self.steps
        elif self.invert:
            sched.set_timesteps(self.steps)
            timesteps = sched.timesteps.clone()
            begin, total = 0, self.steps
            pixels = self._pixels()
            inv = self._invert(prompt, pixels)
            latents, nulls = inv.latent, inv.nulls.to(self.device, self.dtype)
        else:
            assert self.strength is not None
            total = max(self.steps, math.ceil(self.steps / self.strength))
            sched.set_timesteps(total)
            begin = total - self.steps
            timesteps = sched.timesteps[begin * sched.order :].clone()
            if hasattr(sched, "set_begin_index"):
                sched.set_begin_index(begin * sched.order)
            latents = sched.add_noise(self.image_latent(self._pixels()), noise, timesteps[:1])
        self._base = BaseState(prompt, emb, latents.to(self.device, torch.float32), timesteps, begin, total, added,
                               _with_nulls(emb, nulls), nulls)
        self._sched_state = SchedulerState(sched)
        batch = 2 if self.cfg else 1
        self._timesteps_dev = [t.to(self.device).expand(batch) for t in timesteps]  # once, not per frame
        return self._base

    def _pixels(self) -> np.ndarray:
        """The base picture at the render size: a path (--image), or a picture already drawn (the demo's)."""
        if isinstance(self.image, np.ndarray):
            return self.image
        assert self.image is not None
        return load_image(self.image, self.width, self.height)

    @torch.no_grad()
    def image_latent(self, pixels: np.ndarray) -> torch.Tensor:
        """The VAE latent of ``pixels`` ``[h, w, 3]`` uint8 (the distribution's mean, scaled), float32 on the CPU."""
        x = torch.from_numpy(np.ascontiguousarray(pixels)).permute(2, 0, 1)[None].float() / 127.5 - 1.0
        # the torch encoder runs where its weights are (a backend may run the decoder elsewhere)
        w = next(self.c.vae.parameters())
        enc = self.c.vae.encode(x.to(w.device, w.dtype))
        init = enc.latent_dist.mean if hasattr(enc, "latent_dist") else enc.latents
        return ((init.float() - self.shift_factor) * self.scaling_factor).cpu()

    def _invert(self, prompt: str, pixels: np.ndarray) -> Inversion:
        """The photo's inversion under ``prompt`` (cached on disk per photo, prompt, model, steps, size)."""
        from aadiff_live.backends.engines import part_identity, weights_fingerprint

        c = self.c
        parts = {"photo": photo_digest(pixels), "prompt": prompt, "model": c.name, "unet": part_identity(c.unet),
                 "vae": part_identity(c.vae), "text": weights_fingerprint(c.text_encoder),
                 "loras": [a.get("fingerprint", a.get("source")) for a in c.extra.get("loras", [])],
                 "steps": self.steps, "guidance": self.guidance, "size": [self.width, self.height],
                 "dtype": str(self.dtype), "scheduler": dict(c.scheduler.config)}
        unet_device = next(c.unet.parameters()).device
        latent0 = self.image_latent(pixels).to(unet_device)
        self.inversion = invert(torch_unet(c.unet), c.scheduler, latent0, self._encode(prompt)[0],
                                self._encode("")[0], self.guidance, cache=self.invert_cache, parts=parts,
                                null_text_steps=self.null_text)
        c.scheduler.set_timesteps(self.steps)  # as prepare left it
        return self.inversion

    @contextmanager
    def borrowed(self, prompt: str, seed: int):
        """Render ``prompt`` from ``seed`` for a while (an atlas filled ahead for a scene); the current prompt,
        base and schedule come back afterwards, untouched."""
        saved = (self._seed, self._base, self._sched_state, self._timesteps_dev)
        try:
            self.prepare(prompt, seed)
            yield self
        finally:
            self._seed, self._base, self._sched_state, self._timesteps_dev = saved
            self._sched_state.restore(self.c.scheduler)

    # ---------------------------------------------------------------- per frame
    def token_scale(self, positions: Positions, weight: Point) -> torch.Tensor:
        """``[batch, tokens]``: ``weight`` at the chosen positions of the conditional row, 1 elsewhere."""
        return self.token_scales(positions, [weight])

    def token_scales(self, positions: Positions, weights: Sequence[Point], out: torch.Tensor | None = None
                     ) -> torch.Tensor:
        """``[rows, tokens]`` for a batch of ``n = len(weights)`` frames: with guidance ``n`` unconditional
        rows (all 1) then ``n`` conditional rows; without, ``n`` rows. Row ``i`` weights ``weights[i]``.
        Written into ``out`` (of that shape) when given, else into a new tensor.

        ``positions`` is one group of token positions (one weight per frame) or ``k`` groups, one per routed
        word (docs/design.md §1.6): then each ``weights[i]`` holds ``k`` values, value ``j`` at group ``j``."""
        groups = position_groups(positions)
        n = len(weights)
        rows = 2 * n if self.cfg else n
        if out is None:
            c = torch.ones(rows, self.n_tokens, dtype=self.dtype, device=self.device)
        else:
            c = out.fill_(1.0)
        w = torch.tensor(np.asarray(weights, dtype=np.float64).reshape(n, -1), dtype=self.dtype, device=self.device)
        if w.shape[1] != len(groups):
            raise ValueError(f"{len(groups)} groups of positions need {len(groups)} weights per frame, not {w.shape[1]}")
        for j, group in enumerate(groups):
            if group:
                c[rows - n:, group] = w[:, j : j + 1]
        return c

    @torch.no_grad()
    def render_latents(self, weight: Point, positions: Positions) -> torch.Tensor:
        return self.render_latents_batch([weight], positions)

    @torch.no_grad()
    def render_latents_batch(self, weights: Sequence[Point], positions: Positions) -> torch.Tensor:
        """Final latents ``[n, ...]`` of ``n`` frames in one UNet call per step: the base latents repeated per
        row, ``token_scale`` per row, and each row's injected noise drawn from its own generator seeded as a
        single frame's is, so row ``i`` equals ``render_latents(weights[i])`` (within float rounding)."""
        b = self._base
        if b is None:
            raise RuntimeError("call prepare(prompt) before rendering")
        n = len(weights)
        if n == 0:
            raise ValueError("render_latents_batch needs at least one weight")
        sched = self.c.scheduler
        self._sched_state.restore(sched)  # back to step 0 of the prepared schedule (no set_timesteps)
        # the same injected noise for every frame (schedulers that inject none take no generator)
        step_kw: dict = {}
        if self._step_takes_generator:
            step_kw["generator"] = self._generator(1) if n == 1 else [self._generator(1) for _ in range(n)]
        if n == 1:
            emb, added, steps_dev, step_embs = b.embeddings, b.added, self._timesteps_dev, b.step_embeddings
            # static: the buffer allocated once, written in place (a new weight needs no recapture)
            if not self.static:
                scale = self.token_scale(positions, weights[0])
            elif is_grouped(positions):
                scale = self._scale.tensor.copy_(self.token_scale(positions, weights[0]))  # k weights: one copy
            else:
                scale = self._scale.write(float(weights[0]), positions)  # type: ignore[arg-type]
            latents = b.latents.clone()
        else:
            batch = self._batch(b, n)  # [uncond x n, cond x n] with guidance, [cond x n] without
            emb, added, steps_dev, step_embs = batch.embeddings, batch.added, batch.timesteps, batch.step_embeddings
            scale = self.token_scales(positions, weights, out=batch.scale)
            latents = batch.latents.copy_(b.latents.expand(n, *b.latents.shape[1:]))
        for k, (t, tt) in enumerate(zip(b.timesteps, steps_dev, strict=True)):
            model_in = torch.cat([latents] * 2) if self.cfg else latents
            model_in = sched.scale_model_input(model_in, t).to(self.dtype)
            pred = self._unet(model_in, tt, step_embs[k] if step_embs else emb, scale, *added).float()
            if self.cfg:
                uncond, cond = pred.chunk(2)
                pred = uncond + self.guidance * (cond - uncond)
            latents = sched.step(pred, t, latents, return_dict=False, **step_kw)[0]
        return latents

    def _batch(self, base: BaseState, n: int) -> _Batch:
        """The inputs of an ``n``-frame batch: made once per batch size and base, reused by every call."""
        key = (id(base), n)
        got = self._batches.get(key)
        if got is None or got.base is not base:
            while len(self._batches) >= MAX_BATCH_SHAPES:  # the oldest first (a scene's base filled ahead, ...)
                del self._batches[next(iter(self._batches))]
            rows = 2 * n if self.cfg else n
            got = self._batches[key] = _Batch(
                base, base.embeddings.repeat_interleave(n, dim=0),
                tuple(x.repeat_interleave(n, dim=0) for x in base.added),
                [t.to(self.device).expand(rows) for t in base.timesteps],
                torch.ones(rows, self.n_tokens, dtype=self.dtype, device=self.device),
                torch.empty((n, *base.latents.shape[1:]), dtype=base.latents.dtype, device=base.latents.device),
                tuple(e.repeat_interleave(n, dim=0) for e in base.step_embeddings))
        return got

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> np.ndarray:
        return self.decode_batch(latents[:1])[0]

    @torch.no_grad()
    def decode_batch(self, latents: torch.Tensor) -> np.ndarray:
        """``[n, height, width, 3]`` uint8 from latents ``[n, ...]``."""
        return self._to_host(self._image(latents))

    def _to_host(self, img: torch.Tensor) -> np.ndarray:
        """The frame as a numpy array the caller owns; on CUDA through one pinned buffer, and the
        wait for that copy is the frame's only host synchronisation."""
        if self.device.type != "cuda":
            return img.numpy().copy() if self.static else img.numpy()  # static: img is the graph's buffer
        if self._host is None or self._host.shape != img.shape:
            self._host = torch.empty(img.shape, dtype=img.dtype, pin_memory=True)
        self._host.copy_(img, non_blocking=True)
        torch.cuda.current_stream(self.device).synchronize()
        return self._host.numpy().copy()

    def _fell_back(self, failure: str) -> None:
        self.graphs = False
        log.warning("COMPILE FAILED (%s): running eager from now on (slower); the show goes on "
                    "(--no-compile skips compiling)", failure)

    @property
    def alert(self) -> str | None:
        """A fault the show carries on through, for the HUD: the fast path fell back, or an engine did not load."""
        if self.fast_path.failure is not None:
            return f"COMPILE FAILED, running eager: {self.fast_path.failure}"
        return self.backend.alert

    def warm_up(self) -> None:
        """Render one frame so that compilation and CUDA-graph capture happen now, not during the show."""
        if self.graphs:
            t0 = time.perf_counter()
            self.render(1.0, [])
            if self.graphs:  # still: not fallen back to eager
                log.info("CUDA graphs ready in %.0f s", time.perf_counter() - t0)

    def render(self, weight: Point, positions: Positions, profile: bool = False) -> np.ndarray:
        """One frame as ``[height, width, 3]`` uint8. ``profile`` records UNet and VAE seconds."""
        return self.render_batch([weight], positions, profile=profile)[0]

    def render_batch(self, weights: Sequence[Point], positions: Positions, profile: bool = False) -> np.ndarray:
        """``len(weights)`` frames ``[n, height, width, 3]`` uint8, several levels per UNet and VAE call.
        ``positions``: one group (a weight per frame) or one group per routed word (a weight vector per
        frame), as :meth:`token_scales` takes them."""
        if not profile:
            return self.decode_batch(self.render_latents_batch(list(weights), positions))
        t0 = time.perf_counter()
        lat = self.render_latents_batch(list(weights), positions)
        _sync(self.device)
        t1 = time.perf_counter()
        frames = self.decode_batch(lat)
        t2 = time.perf_counter()
        self.last_timing = {"unet": t1 - t0, "vae": t2 - t1}
        return frames


@dataclass(frozen=True)
class _Batch:
    """An ``n``-frame batch's buffers for one base: repeated text inputs and timesteps, ``token_scale``
    (rewritten in place per call) and the working latents (overwritten with the base's per call)."""

    base: BaseState
    embeddings: torch.Tensor
    added: tuple[torch.Tensor, ...]
    timesteps: list[torch.Tensor]
    scale: torch.Tensor
    latents: torch.Tensor
    step_embeddings: tuple[torch.Tensor, ...] = ()  # --invert: each step's text inputs, repeated per frame


def _with_nulls(emb: torch.Tensor, nulls: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
    """Each step's text inputs ``[null of that step, cond]`` from ``emb`` (``[uncond, cond]``); () without nulls."""
    if nulls is None:
        return ()
    cond = emb[-1:]
    return tuple(torch.cat([nulls[k:k + 1].to(emb.dtype), cond]) for k in range(nulls.shape[0]))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
