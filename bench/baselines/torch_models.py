"""The two benchmark networks in PyTorch (eager mode, float32, CPU), plus a training step.

Weights are drawn on the host from a seeded NumPy Generator and copied in, so no global
random state (``torch.manual_seed``) is involved and a given seed gives the same start on
every run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn


def _init_conv_linear(model: nn.Module, seed: int, std_of_fan_in: Callable[[int], float]) -> None:
    """Normal weights with ``std = std_of_fan_in(fan_in)``, zero biases, in module order.

    One Generator is drawn from layer by layer, as ``cnnx.models`` does.
    """
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv2d | nn.Linear):
                w = module.weight
                fan_in = int(np.prod(w.shape[1:]))
                # float64 draw, then float32: the convention of cnnx.nn.init, so the same
                # seed gives cnnx, torch and the loop baseline the same starting weights.
                values = rng.standard_normal(tuple(w.shape)) * std_of_fan_in(fan_in)
                w.copy_(torch.from_numpy(values.astype(np.float32)))
                module.bias.zero_()


def build_mnist_cnn(seed: int = 0) -> nn.Sequential:
    """The slides' MNIST CNN: input ``(N, 1, 28, 28)`` float32, output ``(N, 10)`` logits.

    Conv 3×3 1→8, ReLU, MaxPool 2, Conv 3×3 8→16, ReLU, MaxPool 2, Flatten (400), Linear
    400→10; He normal init (std sqrt(2 / fan_in)), zero biases.
    """
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(400, 10),
    )
    _init_conv_linear(model, seed, lambda fan_in: (2.0 / fan_in) ** 0.5)
    return model


def build_simple_cnn(seed: int = 0) -> nn.Sequential:
    """Report 000's SimpleCNN: input ``(N, 1, 6, 6)`` float32, output ``(N, 3)`` logits.

    Conv 3×3 1→3, Sigmoid, MaxPool 2×2, Conv 2×2 3→3, Sigmoid, Flatten; Xavier normal init
    with std 1/sqrt(fan_in), zero biases.
    """
    model = nn.Sequential(
        nn.Conv2d(1, 3, 3),
        nn.Sigmoid(),
        nn.MaxPool2d(2),
        nn.Conv2d(3, 3, 2),
        nn.Sigmoid(),
        nn.Flatten(),
    )
    _init_conv_linear(model, seed, lambda fan_in: fan_in**-0.5)
    return model


def make_torch_trainer(
    model: nn.Module, lr: float, beta1: float, beta2: float
) -> Callable[[Any, Any], torch.Tensor]:
    """A standard eager training step: Adam (eps 1e-8) on mean softmax cross-entropy.

    Returns:
        ``step(x_host, y_host) -> loss``: takes host arrays ``(B, C, H, W)`` float32 and
        ``(B,)`` int64 (wrapped without copying), runs zero_grad, forward, loss, backward and
        optimizer step, and returns the detached 0-d loss tensor.
    """
    opt = torch.optim.Adam(model.parameters(), lr=lr, betas=(beta1, beta2), eps=1e-8)
    loss_fn = nn.CrossEntropyLoss()
    model.train()

    def step(x_host: Any, y_host: Any) -> torch.Tensor:
        xb = torch.from_numpy(x_host)
        yb = torch.from_numpy(y_host)
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(xb), yb)
        loss.backward()
        opt.step()
        return loss.detach()

    return step
