"""The blur forward operator, in the convention of :func:`stochdeblur.data.synth.degrade`.

``blur = sharp ⊛ kernel`` is a true convolution; the kernel's centre pixel is ``(k // 2, k // 2)``; a *valid*
blur of an ``H × W`` sharp frame is ``(H − k + 1) × (W − k + 1)`` and is aligned with the sharp crop at offset
``k − 1 − k // 2``. The *circular* operator (FFT) equals the valid one on that crop, which is what the
deconvolvers rely on. Everything is batched torch and differentiable in both the image and the kernel.

Shapes: images ``[B, C, H, W]``; kernels ``[k, k]`` (one for the batch) or ``[B, k, k]`` (one per image).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


class _ContiguousGrad(torch.autograd.Function):
    """Identity whose backward makes the incoming gradient contiguous.

    torch 2.14's CPU FFT backward corrupts memory (``free(): invalid next size``) when handed a gradient in
    channels-last strides, which is what a convolution after the deconvolution sends back under
    ``train.channels_last``; every FFT solver output passes through :func:`fft_safe`.
    """

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: Tensor) -> Tensor:  # noqa: D102
        return x.contiguous()

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: Tensor) -> Tensor:  # noqa: D102
        return grad.contiguous()


def fft_safe(x: Tensor) -> Tensor:
    """``x`` in the standard layout, with gradients returned to it in the standard layout (see _ContiguousGrad)."""
    return _ContiguousGrad.apply(x) if x.requires_grad else x.contiguous()


def gradients(x: Tensor) -> tuple[Tensor, Tensor]:
    """Circular forward differences of ``[..., H, W]`` along rows and columns (new tensors): the ``[1, −1]``
    filters whose OTFs the deconvolution and the kernel estimate use."""
    return torch.roll(x, -1, -2).sub_(x), torch.roll(x, -1, -1).sub_(x)


def divergence(gy: Tensor, gx: Tensor) -> Tensor:
    """The adjoint of :func:`gradients`, ``Dᵀg`` (a negative divergence): what ``conj(OTF)`` of each filter does."""
    return torch.roll(gy, 1, -2).sub_(gy).add_(torch.roll(gx, 1, -1)).sub_(gx)


LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601


def luminance(image: Tensor) -> Tensor:
    """BT.601 luma of ``[..., 3, H, W]`` (the mean of other channel counts) → ``[..., 1, H, W]``, same units."""
    if image.shape[-3] != 3:
        return image.mean(dim=-3, keepdim=True)
    weights = torch.tensor(LUMA, dtype=image.dtype, device=image.device)[:, None, None]
    return (image * weights).sum(dim=-3, keepdim=True)


def unit_luminance(image: Tensor) -> Tensor:
    """``[C, H, W]`` in [−1, 1] → ``[H, W]`` luminance in [0, 1] (the units of the blind estimator's λ)."""
    return luminance((image.float() + 1.0) * 0.5)[0]


def batch_kernels(kernel: Tensor, batch: int) -> Tensor:
    """``[k, k]`` or ``[B, k, k]`` → ``[B, k, k]`` (a single kernel is shared by the batch)."""
    if kernel.dim() == 2:
        kernel = kernel.expand(batch, *kernel.shape)
    if kernel.dim() != 3 or kernel.shape[0] != batch:
        raise ValueError(f"kernel must be [k, k] or [{batch}, k, k], got {list(kernel.shape)}")
    return kernel


def crop_offset(size: int) -> int:
    """Where the valid blur of a ``size``-px kernel starts inside the sharp frame: ``size − 1 − size // 2``."""
    return size - 1 - size // 2


def blur_valid(image: Tensor, kernel: Tensor) -> Tensor:
    """Valid true convolution (no invented border): ``[B, C, H, W]`` → ``[B, C, H − k_h + 1, W − k_w + 1]``.

    Equals :func:`stochdeblur.data.synth.degrade`'s blur before noise (``scipy.signal.fftconvolve``, "valid").
    """
    b, c, h, w = image.shape
    kernels = batch_kernels(kernel, b).to(image.dtype)
    kh, kw = kernels.shape[-2:]
    if h < kh or w < kw:
        raise ValueError(f"image {h}x{w} is smaller than the kernel {kh}x{kw}")
    weight = kernels.flip(-2, -1).repeat_interleave(c, dim=0)[:, None]  # conv2d correlates: flip = convolve
    return F.conv2d(image.reshape(1, b * c, h, w), weight, groups=b * c).reshape(b, c, h - kh + 1, w - kw + 1)


def psf2otf(kernel: Tensor, shape: tuple[int, int]) -> Tensor:
    """Optical transfer function of ``[..., k_h, k_w]`` kernels on an ``H × W`` periodic frame (complex).

    The centre pixel ``(k // 2, k // 2)`` is moved to the origin, so the circular blur is aligned with its input.
    """
    kh, kw = kernel.shape[-2:]
    h, w = shape
    if kh > h or kw > w:
        raise ValueError(f"kernel {kh}x{kw} does not fit a {h}x{w} frame")
    padded = F.pad(kernel, (0, w - kw, 0, h - kh))
    padded = torch.roll(padded, shifts=(-(kh // 2), -(kw // 2)), dims=(-2, -1))
    return torch.fft.rfft2(padded)


def blur_circular(image: Tensor, kernel: Tensor) -> Tensor:
    """Periodic true convolution by FFT, same size as the input: ``[B, C, H, W]`` → ``[B, C, H, W]``."""
    b, _, h, w = image.shape
    otf = psf2otf(batch_kernels(kernel, b).to(image.dtype), (h, w))[:, None]
    return torch.fft.irfft2(torch.fft.rfft2(image) * otf, s=(h, w))
