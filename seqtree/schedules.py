"""Noise schedules of absorbing (masked) diffusion.

A schedule gives alpha(t), the probability that a token is still unmasked at time t in [0, 1], with alpha(0) = 1
and alpha(1) close to 0, its derivative, and its inverse (the first-hitting sampler draws event times through it).

- ``loglinear`` (MDLM, Sahoo et al. 2024, Sec. 3.5 / App. E.1): total noise sigma(t) = -log(1 - (1 - eps) t), so
  alpha(t) = 1 - (1 - eps) t; the NELBO weight alpha'/(1 - alpha) is then 1/t up to eps. The default.
- ``linear`` (linear in total noise, SEDD's "linear"): sigma(t) = sigma_max t with alpha(1) = eps, so
  alpha(t) = eps ** t.
- ``cosine`` (MD4, Shi et al. 2024, Table 1): alpha(t) = eps + (1 - eps) (1 - cos(pi/2 (1 - t))).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
from torch import Tensor


class NoiseSchedule(ABC):
    """alpha(t): probability of a token being unmasked at time t. All methods are elementwise on tensors."""

    name: str

    @abstractmethod
    def alpha(self, t: Tensor) -> Tensor: ...

    @abstractmethod
    def alpha_derivative(self, t: Tensor) -> Tensor: ...

    @abstractmethod
    def inverse_alpha(self, alpha: Tensor) -> Tensor:
        """The time t at which alpha(t) equals ``alpha`` (clamped into [0, 1])."""

    def nelbo_weight(self, t: Tensor) -> Tensor:
        """-alpha'(t) / (1 - alpha(t)): the continuous-time NELBO weight of MDLM Eq. 10 / MD4 Eq. 5."""
        return -self.alpha_derivative(t) / (1.0 - self.alpha(t)).clamp_min(1e-12)


@dataclass(frozen=True)
class LogLinearSchedule(NoiseSchedule):
    eps: float = 1e-3
    name: str = "loglinear"

    def alpha(self, t: Tensor) -> Tensor:
        return 1.0 - (1.0 - self.eps) * t

    def alpha_derivative(self, t: Tensor) -> Tensor:
        return torch.full_like(t, -(1.0 - self.eps))

    def inverse_alpha(self, alpha: Tensor) -> Tensor:
        return ((1.0 - alpha) / (1.0 - self.eps)).clamp(0.0, 1.0)


@dataclass(frozen=True)
class LinearSchedule(NoiseSchedule):
    eps: float = 1e-3
    name: str = "linear"

    def alpha(self, t: Tensor) -> Tensor:
        return torch.exp(t * math.log(self.eps))

    def alpha_derivative(self, t: Tensor) -> Tensor:
        return math.log(self.eps) * self.alpha(t)

    def inverse_alpha(self, alpha: Tensor) -> Tensor:
        return (torch.log(alpha.clamp_min(1e-30)) / math.log(self.eps)).clamp(0.0, 1.0)


@dataclass(frozen=True)
class CosineSchedule(NoiseSchedule):
    eps: float = 1e-3
    name: str = "cosine"

    def alpha(self, t: Tensor) -> Tensor:
        return self.eps + (1.0 - self.eps) * (1.0 - torch.cos(0.5 * math.pi * (1.0 - t)))

    def alpha_derivative(self, t: Tensor) -> Tensor:
        return -(1.0 - self.eps) * 0.5 * math.pi * torch.sin(0.5 * math.pi * (1.0 - t))

    def inverse_alpha(self, alpha: Tensor) -> Tensor:
        inner = (1.0 - (alpha - self.eps) / (1.0 - self.eps)).clamp(-1.0, 1.0)
        return (1.0 - torch.acos(inner) / (0.5 * math.pi)).clamp(0.0, 1.0)


SCHEDULES: dict[str, type[NoiseSchedule]] = {
    "loglinear": LogLinearSchedule,
    "linear": LinearSchedule,
    "cosine": CosineSchedule,
}


def make_schedule(name: str = "loglinear", eps: float = 1e-3) -> NoiseSchedule:
    if name not in SCHEDULES:
        raise ValueError(f"unknown noise schedule {name!r}; choose one of {sorted(SCHEDULES)}")
    return SCHEDULES[name](eps=eps)
