"""Shared test set-up: offline everything, deterministic seeds, few threads (2-core CI machines)."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(int(os.environ.get("STOCHDEBLUR_TEST_THREADS", "2")))


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


_CUDA = [pytest.param("cuda", marks=pytest.mark.gpu)] if torch.cuda.is_available() else []


@pytest.fixture(params=["cpu", *_CUDA])
def device(request: pytest.FixtureRequest) -> torch.device:
    """Each device a test must pass on: the CPU, plus CUDA where there is one (that case is marked ``gpu``)."""
    return torch.device(request.param)


@pytest.fixture
def pretrained_backbone_cache(tmp_path, monkeypatch: pytest.MonkeyPatch):
    """A torch hub cache (TORCH_HOME, empty HF cache) holding timm's ``mobilenetv2_100`` weights (random values
    standing in for ImageNet's), so ``pretrained_backbone=true`` really loads a backbone; yields the weights."""
    import huggingface_hub.constants
    import timm

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    state = timm.create_model("mobilenetv2_100").state_dict()
    url = timm.models.get_pretrained_cfg("mobilenetv2_100").url
    (tmp_path / "torch" / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(state, tmp_path / "torch" / "hub" / "checkpoints" / url.rsplit("/", 1)[-1])
    return state
