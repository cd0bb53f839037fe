"""Exponential moving average (EMA) of a module's weights, for validation and export.

The shadow holds copies (at least float32) of every parameter (averaged) and every buffer (copied), keyed by
``state_dict`` name. It has ``state_dict``/``load_state_dict``, so ``accelerator.register_for_checkpointing``
saves and restores it with ``save_state``/``load_state``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor, nn


class EMA:
    """EMA of ``module``'s parameters with a warm-up: decay_n = min(decay, (1 + n) / (10 + n)).

    ``n`` counts updates from ``start_step`` on; before ``start_step`` the shadow just copies the weights.
    The warm-up keeps short runs from validating weights that are mostly the random initialisation.

    Args:
        module: the (unwrapped) model whose weights are averaged.
        decay: the EMA decay at full warm-up, in [0, 1).
        start_step: optimizer step from which averaging starts.
    """

    def __init__(self, module: nn.Module, decay: float, start_step: int = 0) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay, self.start_step, self.num_updates = float(decay), int(start_step), 0
        self.shadow: dict[str, Tensor] = {}
        self._copy_from(module)

    def _copy_from(self, module: nn.Module) -> None:
        self.shadow = {name: _shadow_copy(t) for name, t in _named_tensors(module)}

    def current_decay(self) -> float:
        """The decay the next averaging update uses (warm-up included)."""
        n = self.num_updates
        return min(self.decay, (1.0 + n) / (10.0 + n))

    @torch.no_grad()
    def update(self, module: nn.Module, step: int) -> None:
        """Fold ``module``'s current weights into the shadow; ``step`` is the optimizer step just taken."""
        if step < self.start_step:
            self._copy_from(module)
            return
        decay = self.current_decay()
        params = dict(module.named_parameters())
        for name, tensor in _named_tensors(module):
            shadow = self.shadow[name]
            if name in params and tensor.dtype.is_floating_point:
                shadow.lerp_(tensor.detach().to(shadow.device, shadow.dtype), 1.0 - decay)
            else:
                shadow.copy_(tensor.detach())
        self.num_updates += 1

    @torch.no_grad()
    def copy_to(self, module: nn.Module) -> None:
        """Overwrite ``module``'s parameters and buffers with the shadow (in their own dtype/device)."""
        for name, tensor in _named_tensors(module):
            tensor.copy_(self.shadow[name].to(tensor.device, tensor.dtype))

    @contextlib.contextmanager
    def swapped_in(self, module: nn.Module) -> Iterator[nn.Module]:
        """Context manager: ``module`` holds the EMA weights inside the block, its own weights after."""
        backup = {name: t.detach().clone() for name, t in _named_tensors(module)}
        self.copy_to(module)
        try:
            yield module
        finally:
            with torch.no_grad():
                for name, tensor in _named_tensors(module):
                    tensor.copy_(backup[name])

    def state_dict(self) -> dict[str, Any]:
        """Decay settings, update count and the shadow tensors (for checkpoints)."""
        return {"decay": self.decay, "start_step": self.start_step, "num_updates": self.num_updates,
                "shadow": {name: t.clone() for name, t in self.shadow.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict`; the tensor names must match this shadow's."""
        missing = sorted(set(self.shadow) ^ set(state["shadow"]))
        if missing:
            raise ValueError(f"EMA state does not match the model; differing tensors: {', '.join(missing[:8])}")
        self.decay, self.start_step = float(state["decay"]), int(state["start_step"])
        self.num_updates = int(state["num_updates"])
        self.shadow = {name: t.detach().clone() for name, t in state["shadow"].items()}


def _shadow_copy(tensor: Tensor) -> Tensor:
    """A detached copy; fp16/bf16 become float32 (averaging precision), other dtypes are kept (e.g. float64 tables)."""
    tensor = tensor.detach()
    return tensor.float().clone() if tensor.dtype in (torch.float16, torch.bfloat16) else tensor.clone()


def _named_tensors(module: nn.Module) -> Iterator[tuple[str, Tensor]]:
    """Parameters, then buffers (persistent or not), by ``state_dict``-style name (shared tensors once)."""
    yield from module.named_parameters()
    yield from module.named_buffers()
