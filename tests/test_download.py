"""``aadiff-live download``: which repos, files and variants are fetched (the hub is mocked: the
file lists are those of the real repos' layouts, built from aadiff_live.models.architectures), and loading the
fp16 variant on a GPU dtype."""

from __future__ import annotations

import pytest
import torch

from aadiff_live.errors import UserError

SDXL_FILES = [
    "README.md", "model_index.json", "sd_xl_turbo_1.0.safetensors", "sd_xl_turbo_1.0_fp16.safetensors",
    "scheduler/scheduler_config.json",
    "text_encoder/config.json", "text_encoder/model.safetensors", "text_encoder/model.fp16.safetensors",
    "text_encoder_2/config.json", "text_encoder_2/model.safetensors", "text_encoder_2/model.fp16.safetensors",
    "tokenizer/merges.txt", "tokenizer/special_tokens_map.json", "tokenizer/tokenizer_config.json",
    "tokenizer/vocab.json", "tokenizer_2/merges.txt", "tokenizer_2/special_tokens_map.json",
    "tokenizer_2/tokenizer_config.json", "tokenizer_2/vocab.json",
    "unet/config.json", "unet/diffusion_pytorch_model.safetensors", "unet/diffusion_pytorch_model.fp16.safetensors",
    "vae/config.json", "vae/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.fp16.safetensors",
    "vae_decoder/model.onnx", "vae_encoder/model.onnx",
]
SD15_FILES = [
    "model_index.json", "v1-5-pruned.ckpt", "v1-5-pruned-emaonly.safetensors",
    "feature_extractor/preprocessor_config.json", "safety_checker/config.json", "safety_checker/model.safetensors",
    "scheduler/scheduler_config.json", "text_encoder/config.json", "text_encoder/model.safetensors",
    "text_encoder/pytorch_model.bin", "tokenizer/merges.txt", "tokenizer/vocab.json",
    "tokenizer/special_tokens_map.json", "tokenizer/tokenizer_config.json", "unet/config.json",
    "unet/diffusion_pytorch_model.safetensors", "unet/diffusion_pytorch_model.bin",
    "unet/diffusion_pytorch_model.fp16.safetensors", "unet/diffusion_pytorch_model.non_ema.safetensors",
    "vae/config.json", "vae/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.fp16.safetensors",
]
REPOS = {
    "stabilityai/sdxl-turbo": SDXL_FILES,
    "runwayml/stable-diffusion-v1-5": SD15_FILES,
    "madebyollin/taesd": ["config.json", "diffusion_pytorch_model.safetensors", "taesd_decoder.pth", "README.md"],
    "madebyollin/taesdxl": ["config.json", "diffusion_pytorch_model.safetensors", "taesdxl_decoder.pth"],
    "laion/clap-htsat-unfused": ["config.json", "merges.txt", "vocab.json", "preprocessor_config.json",
                                 "model.safetensors", "pytorch_model.bin", "tokenizer.json", "tokenizer_config.json",
                                 "special_tokens_map.json"],
}


@pytest.fixture()
def hub(monkeypatch, tmp_path):
    import huggingface_hub

    calls: list[tuple[str, list[str]]] = []

    def list_repo_files(repo, **kw):
        if repo not in REPOS:
            raise huggingface_hub.errors.RepositoryNotFoundError(f"404 {repo}")
        return list(REPOS[repo])

    def snapshot_download(repo, allow_patterns=None, **kw):
        assert set(allow_patterns) <= set(REPOS[repo]), "asked for a file the repo does not have"
        calls.append((repo, sorted(allow_patterns)))
        return str(tmp_path / repo.replace("/", "--"))

    monkeypatch.setattr(huggingface_hub, "list_repo_files", list_repo_files)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    return calls


def test_sdxl_turbo_gig_fp16_with_tiny_vae_and_clap(hub, cli):
    code, _, err = cli("download", "stabilityai/sdxl-turbo", "--vae", "tiny", "--variant", "fp16")
    assert code == 0, err
    repos = dict(hub)
    assert list(repos) == ["stabilityai/sdxl-turbo", "madebyollin/taesdxl", "laion/clap-htsat-unfused"]
    files = repos["stabilityai/sdxl-turbo"]
    weights = [f for f in files if f.endswith(".safetensors")]
    assert weights == ["text_encoder/model.fp16.safetensors", "text_encoder_2/model.fp16.safetensors",
                       "unet/diffusion_pytorch_model.fp16.safetensors", "vae/diffusion_pytorch_model.fp16.safetensors"]
    assert "tokenizer_2/vocab.json" in files and "model_index.json" in files
    assert not any(f.endswith(".onnx") or f.startswith("sd_xl") or f == "README.md" for f in files)
    assert repos["laion/clap-htsat-unfused"] == sorted(
        f for f in REPOS["laion/clap-htsat-unfused"] if not f.endswith(".bin"))
    assert repos["madebyollin/taesdxl"] == ["config.json", "diffusion_pytorch_model.safetensors"]


def test_sd15_plain_weights_without_safety_checker(hub, cli):
    code, _, err = cli("download", "runwayml/stable-diffusion-v1-5", "--variant", "plain", "--no-clap")
    assert code == 0, err
    [(repo, files)] = hub
    assert repo == "runwayml/stable-diffusion-v1-5"
    assert [f for f in files if f.endswith((".safetensors", ".bin", ".ckpt"))] == [
        "text_encoder/model.safetensors", "unet/diffusion_pytorch_model.safetensors",
        "vae/diffusion_pytorch_model.safetensors"]
    assert not any(f.startswith(("safety_checker", "feature_extractor")) for f in files)


def test_auto_variant_follows_cuda(hub, cli, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert cli("download", "runwayml/stable-diffusion-v1-5", "--no-clap")[0] == 0
    assert "unet/diffusion_pytorch_model.fp16.safetensors" in hub[0][1]


def test_unknown_repo_and_unreachable_hub_are_one_line_errors(hub, cli, monkeypatch):
    code, _, err = cli("download", "nobody/nothing", "--no-clap")
    assert code == 2 and "cannot list 'nobody/nothing'" in err and err.count("error:") == 1
    import huggingface_hub

    def offline(repo, **kw):
        raise ConnectionError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(huggingface_hub, "list_repo_files", offline)
    code, _, err = cli("download", "stabilityai/sdxl-turbo")
    assert code == 2 and "hub is not reachable" in err and "Traceback" not in err


def test_fp16_variant_is_loaded_on_a_gpu_dtype(model_layouts, tmp_path):
    """A folder (or cache) holding only fp16 weights loads with --dtype float16 (the GPU default)."""
    from aadiff_live.models.loading import load_components
    from aadiff_live.models.random_model import write_random_model

    folder = write_random_model(model_layouts["sd15"], tmp_path / "m", shrink=True)
    c = load_components(str(folder))
    for part in ("unet", "vae", "text_encoder"):
        module = getattr(c, part).to(torch.float16)
        module.save_pretrained(str(folder / part), variant="fp16")
        for f in (folder / part).glob("*.safetensors"):
            if ".fp16." not in f.name:
                f.unlink()
    c = load_components(str(folder), dtype=torch.float16)
    assert next(c.unet.parameters()).dtype == torch.float16
    with pytest.raises(UserError, match=r"text_encoder/ .*no file named model.safetensors"):  # fp32: named
        load_components(str(folder))
