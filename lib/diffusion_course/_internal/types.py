"""Types shared across the package."""

from __future__ import annotations

from collections.abc import Callable

import torch

# A noise predictor as the samplers and losses call it: model(x_t, t) -> eps_hat, with t a LongTensor of shape (B,).
# Any nn.Module with that forward qualifies, and so does a plain function (the exact oracles, a guided model).
EpsModel = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

__all__ = ["EpsModel"]
