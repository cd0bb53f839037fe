"""DeblurGAN-v2 FPN generator (Kupyn et al., ICCV 2019) with timm backbones.

Layer-for-layer port of the official ``FPNMobileNet`` / ``FPNInception`` (DEBLURGAN.md §1):
five backbone taps at strides 2/4/8/16/32 → 1×1 laterals → top-down path (nearest ×2, conv3×3 + norm + ReLU)
→ four conv heads upsampled to stride 4 and concatenated → smooth (+ lateral0) → smooth2 → final conv3×3,
output ``clamp(tanh(final) + x, -1, 1)``.

Backbones are built with timm and cut at the official taps (timm's own ``features_only`` taps differ:
MobileNetV2 96/320 channels instead of 64/160, Inception-ResNet-v2 after ``conv2d_2b``… instead of
``conv2d_1a``…), so only the stages the FPN uses are registered and the parameter counts match the official
"params used" exactly (fpn_mobilenet 2,106,627; fpn_inception 35,840,099; fpn_mobilenet_dsc has 1,185,507).

Deviations from the official code, all deliberate:

- Inception-ResNet-v2 uses *valid* convs; the official code reflection-pads the laterals by hand and only works
  for inputs ≥ 128 px. Here every valid conv/max-pool of the used stages gets ``padding = k // 2``, so each tap
  is exactly H/2…H/32 for any multiple of 32 ≥ 32 and no lateral padding is needed (ImageNet weights still load;
  the slightly larger maps cost 19.7 instead of 17.5 GMACs at 256²).
- ``InstanceNorm2d(affine=False)`` without running statistics: the official model keeps ``train(True)`` at
  inference, which is what per-instance statistics give in ``eval()`` too. Backbone BatchNorm behaves normally.
- ``mobilenet_dsc`` (the paper's MobileNet-DSC, no official code): MobileNetV2 backbone (already depthwise +
  pointwise convs apart from its 3→32 stem, kept so ImageNet weights load) and an FPN whose every 3×3 conv is
  depthwise 3×3 + pointwise 1×1 (no activation between them); the 1×1 laterals are already pointwise.
- Input is reflect-padded (bottom/right) to a multiple of 32 and the output cropped back (official: zero pad).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import timm
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..tiling import pad_to_multiple

BACKBONES = ("mobilenet_v2", "inception_resnet_v2", "mobilenet_dsc")


class PretrainedWeightsMissing(UserWarning):
    """ImageNet weights for a backbone are not in the local timm/HF/torch cache; the model starts from random init."""


def _cached_weight_file(timm_name: str) -> Path | None:
    """Path of the backbone's ImageNet weights in the local HF hub or torch hub cache, or None (no network)."""
    from huggingface_hub import try_to_load_from_cache

    cfg = timm.models.get_pretrained_cfg(timm_name)
    if cfg is None:
        return None
    if cfg.hf_hub_id:
        for filename in ("model.safetensors", "pytorch_model.bin"):
            found = try_to_load_from_cache(cfg.hf_hub_id, filename)
            if isinstance(found, str):
                return Path(found)
    if cfg.url:
        candidate = Path(torch.hub.get_dir()) / "checkpoints" / Path(cfg.url).name
        if candidate.is_file():
            return candidate
    return None


def _load_state_dict(path: Path) -> dict[str, Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    return torch.load(path, map_location="cpu", weights_only=True)


def create_timm_backbone(timm_name: str, pretrained: bool) -> tuple[nn.Module, bool]:
    """A full timm classifier, with ImageNet weights from the local cache when asked and present, and whether
    they were loaded.

    Never touches the network: when the weights are not cached, one :class:`PretrainedWeightsMissing` warning
    says where they were looked for and the model keeps its random init.
    """
    model = timm.create_model(timm_name, pretrained=False)
    if not pretrained:
        return model, False
    path = _cached_weight_file(timm_name)
    if path is None:
        cfg = timm.models.get_pretrained_cfg(timm_name)
        where = cfg.hf_hub_id or cfg.url if cfg is not None else timm_name
        warnings.warn(f"ImageNet weights for backbone {timm_name!r} are not in the local cache ({where}; "
                      f"HF hub cache or {torch.hub.get_dir()}/checkpoints); starting from random init",
                      PretrainedWeightsMissing, stacklevel=3)
        return model, False
    model.load_state_dict(_load_state_dict(path))
    return model, True


def _mobilenet_v2_stages(pretrained: bool) -> tuple[nn.ModuleList, tuple[int, ...], bool]:
    """Official taps of torchvision-style MobileNetV2: features[0:2], [2:4], [4:7], [7:11], [11:16]."""
    net, loaded = create_timm_backbone("mobilenetv2_100", pretrained)
    blocks = net.blocks
    stages = nn.ModuleList([
        nn.Sequential(net.conv_stem, net.bn1, blocks[0]),    # stride 2, 16 ch
        blocks[1],                                            # stride 4, 24 ch
        blocks[2],                                            # stride 8, 32 ch
        blocks[3],                                            # stride 16, 64 ch
        nn.Sequential(blocks[4], blocks[5][0], blocks[5][1]),  # stride 32, 160 ch (features[16:] unused)
    ])
    return stages, (16, 24, 32, 64, 160), loaded


def _same_padding(module: nn.Module) -> None:
    """Give every unpadded k×k conv / max-pool padding k//2, so stride-2 stages halve even sizes exactly."""
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d) and layer.padding == (0, 0) and max(layer.kernel_size) > 1:
            layer.padding = tuple(k // 2 for k in layer.kernel_size)
        elif isinstance(layer, nn.MaxPool2d) and layer.padding == 0:
            layer.padding = layer.kernel_size // 2


def _inception_resnet_v2_stages(pretrained: bool) -> tuple[nn.ModuleList, tuple[int, ...], bool]:
    """Official taps: conv2d_1a | 2a,2b,pool | 3b,4a,pool | 5b,10×block35,6a | 20×block17,7a (block8… unused)."""
    net, loaded = create_timm_backbone("inception_resnet_v2", pretrained)
    stages = nn.ModuleList([
        net.conv2d_1a,
        nn.Sequential(net.conv2d_2a, net.conv2d_2b, net.maxpool_3a),
        nn.Sequential(net.conv2d_3b, net.conv2d_4a, net.maxpool_5a),
        nn.Sequential(net.mixed_5b, net.repeat, net.mixed_6a),
        nn.Sequential(net.repeat_1, net.mixed_7a),
    ])
    _same_padding(stages)
    return stages, (32, 64, 192, 1088, 2080), loaded


def conv3x3(in_ch: int, out_ch: int, bias: bool, separable: bool) -> nn.Module:
    """A 3×3 conv, or its depthwise-separable version (depthwise 3×3 without bias + pointwise 1×1)."""
    if not separable:
        return nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=bias)
    return nn.Sequential(nn.Conv2d(in_ch, in_ch, 3, padding=1, groups=in_ch, bias=False),
                         nn.Conv2d(in_ch, out_ch, 1, bias=bias))


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    raise ValueError(f"FPNGenerator: norm={kind!r} is not one of instance, batch")


def _conv_norm_relu(in_ch: int, out_ch: int, norm: str, separable: bool) -> nn.Sequential:
    return nn.Sequential(conv3x3(in_ch, out_ch, True, separable), _norm(norm, out_ch), nn.ReLU(inplace=True))


class FPNHead(nn.Module):
    """conv3×3 → ReLU → conv3×3 → ReLU, no bias, no norm (official ``FPNHead``)."""

    def __init__(self, in_ch: int, mid_ch: int, out_ch: int, separable: bool) -> None:
        super().__init__()
        self.block0 = conv3x3(in_ch, mid_ch, False, separable)
        self.block1 = conv3x3(mid_ch, out_ch, False, separable)

    def forward(self, x: Tensor) -> Tensor:
        """Shape: [B, in_ch, h, w] → [B, out_ch, h, w]."""
        return F.relu(self.block1(F.relu(self.block0(x))))


class FPNGenerator(nn.Module):
    """DeblurGAN-v2 generator: FPN over a timm backbone, global residual, any input size.

    Args:
        backbone: ``"mobilenet_v2"`` (C_fpn 128, fpn_mobilenet), ``"inception_resnet_v2"`` (C_fpn 256,
            fpn_inception) or ``"mobilenet_dsc"`` (MobileNetV2 + depthwise-separable FPN convs).
        pretrained_backbone: load ImageNet weights from the local cache (warn and use random init if absent);
            ``backbone_pretrained`` then says whether they were loaded.
        norm: ``"instance"`` (official) or ``"batch"`` for the FPN's td/smooth layers.
    """

    size_multiple = 32

    def __init__(self, backbone: str = "mobilenet_v2", pretrained_backbone: bool = False,
                 norm: str = "instance") -> None:
        super().__init__()
        if backbone not in BACKBONES:
            raise ValueError(f"FPNGenerator: backbone={backbone!r} is not one of {', '.join(BACKBONES)}")
        self.backbone_name = backbone
        if backbone == "inception_resnet_v2":
            self.encoder, channels, self.backbone_pretrained = _inception_resnet_v2_stages(pretrained_backbone)
            fpn_ch = 256
        else:
            self.encoder, channels, self.backbone_pretrained = _mobilenet_v2_stages(pretrained_backbone)
            fpn_ch = 128
        head_ch = fpn_ch // 2
        dsc = backbone == "mobilenet_dsc"
        self.laterals = nn.ModuleList([nn.Conv2d(channels[0], head_ch, 1, bias=False)] +
                                      [nn.Conv2d(c, fpn_ch, 1, bias=False) for c in channels[1:]])
        self.td = nn.ModuleList([_conv_norm_relu(fpn_ch, fpn_ch, norm, dsc) for _ in range(3)])
        self.heads = nn.ModuleList([FPNHead(fpn_ch, head_ch, head_ch, dsc) for _ in range(4)])
        self.smooth = _conv_norm_relu(4 * head_ch, head_ch, norm, dsc)
        self.smooth2 = _conv_norm_relu(head_ch, head_ch // 2, norm, dsc)
        self.final = conv3x3(head_ch // 2, 3, True, dsc)

    def backbone_parameters(self) -> list[nn.Parameter]:
        """The timm backbone's parameters (frozen during the official warm-up)."""
        return list(self.encoder.parameters())

    def _pyramid(self, x: Tensor) -> list[Tensor]:
        """Lateral0 and the top-down maps 1..4 (strides 2, 4, 8, 16, 32)."""
        feats = []
        for stage in self.encoder:
            x = stage(x)
            feats.append(x)
        lats = [lateral(f) for lateral, f in zip(self.laterals, feats, strict=True)]
        maps = [lats[4]]
        for td, lat in zip(self.td, (lats[3], lats[2], lats[1]), strict=True):
            maps.append(td(lat + F.interpolate(maps[-1], scale_factor=2.0, mode="nearest")))
        return [lats[0], *reversed(maps)]

    def forward(self, x: Tensor) -> Tensor:
        """Deblur a batch of any size (reflect-padded to a multiple of 32, cropped back).

        Shape:
            x [B, 3, H, W] in [-1, 1] → [B, 3, H, W] in [-1, 1].
        """
        height, width = x.shape[-2:]
        padded, _ = pad_to_multiple(x, self.size_multiple)
        lat0, *maps = self._pyramid(padded)
        heads = [F.interpolate(head(m), scale_factor=float(2 ** i), mode="nearest") if i else head(m)
                 for i, (head, m) in enumerate(zip(self.heads, maps, strict=True))]
        smoothed = self.smooth(torch.cat(heads[::-1], dim=1))
        smoothed = F.interpolate(smoothed, scale_factor=2.0, mode="nearest") + lat0
        smoothed = F.interpolate(self.smooth2(smoothed), scale_factor=2.0, mode="nearest")
        out = torch.tanh(self.final(smoothed)) + padded
        return out.clamp(-1.0, 1.0)[..., :height, :width]
