"""The benchmark zoo: standard CNNs written once as layer lists, built in cnnx and in PyTorch.

Each network is a list of layer specs, from which :func:`build_cnnx` and :func:`build_torch`
build the same architecture in both libraries. Both draw the initial weights from one seeded
``numpy.random.Generator``, layer by layer (He normal, zero biases; float64 draw cast to
float32, the convention of ``cnnx.nn.init``), so a seed gives both the same start. Networks
that cnnx ships in its model zoo (``lenet5``, ``mnist_cnn``) are taken from ``cnnx.models``
on the cnnx side, and :func:`check_against_zoo` verifies that the spec here describes the
same parameters.

Layer specs:
    ``("conv", in, out, kernel, padding)``, ``("relu",)``, ``("pool", k)`` (max pooling),
    ``("dropout", p)``, ``("flatten",)``, ``("linear", in, out)``.
"""

from __future__ import annotations

from typing import Any

Spec = list[tuple[Any, ...]]

#: name -> (description, input shape (C, H, W), layer specs, cnnx model-zoo name or None)
NETWORKS: dict[str, tuple[str, tuple[int, int, int], Spec, str | None]] = {
    "torch_mnist": (
        "PyTorch's MNIST example: Conv 3×3 1→32, ReLU, Conv 3×3 32→64, ReLU, MaxPool 2, "
        "Dropout 0.25, Linear 9216→128, ReLU, Dropout 0.5, Linear 128→10",
        (1, 28, 28),
        [
            ("conv", 1, 32, 3, 0),
            ("relu",),
            ("conv", 32, 64, 3, 0),
            ("relu",),
            ("pool", 2),
            ("dropout", 0.25),
            ("flatten",),
            ("linear", 9216, 128),
            ("relu",),
            ("dropout", 0.5),
            ("linear", 128, 10),
        ],
        None,
    ),
    "lenet5": (
        "cnnx's lenet5: Conv 5×5 1→6 pad 2, ReLU, MaxPool 2, Conv 5×5 6→16, ReLU, MaxPool 2, "
        "Linear 400→120→84→10",
        (1, 28, 28),
        [
            ("conv", 1, 6, 5, 2),
            ("relu",),
            ("pool", 2),
            ("conv", 6, 16, 5, 0),
            ("relu",),
            ("pool", 2),
            ("flatten",),
            ("linear", 400, 120),
            ("relu",),
            ("linear", 120, 84),
            ("relu",),
            ("linear", 84, 10),
        ],
        "lenet5",
    ),
    "cifar_cnn": (
        "CIFAR-10 size: 3×32×32, Conv 3×3 3→32 pad 1, ReLU, MaxPool 2, Conv 3×3 32→64 pad 1, "
        "ReLU, MaxPool 2, Linear 4096→128, ReLU, Dropout 0.5, Linear 128→10",
        (3, 32, 32),
        [
            ("conv", 3, 32, 3, 1),
            ("relu",),
            ("pool", 2),
            ("conv", 32, 64, 3, 1),
            ("relu",),
            ("pool", 2),
            ("flatten",),
            ("linear", 4096, 128),
            ("relu",),
            ("dropout", 0.5),
            ("linear", 128, 10),
        ],
        None,
    ),
    "mnist_cnn": (
        "cnnx's mnist_cnn: Conv 3×3 1→8, ReLU, MaxPool 2, Conv 3×3 8→16, ReLU, MaxPool 2, "
        "Linear 400→10",
        (1, 28, 28),
        [
            ("conv", 1, 8, 3, 0),
            ("relu",),
            ("pool", 2),
            ("conv", 8, 16, 3, 0),
            ("relu",),
            ("pool", 2),
            ("flatten",),
            ("linear", 400, 10),
        ],
        "mnist_cnn",
    ),
}

NUM_CLASSES = 10


def _weight_shapes(spec: Spec) -> list[tuple[int, ...]]:
    shapes: list[tuple[int, ...]] = []
    for layer in spec:
        if layer[0] == "conv":
            _, cin, cout, k, _ = layer
            shapes += [(cout, cin, k, k), (cout,)]
        elif layer[0] == "linear":
            _, fin, fout = layer
            shapes += [(fout, fin), (fout,)]
    return shapes


def build_cnnx(name: str, seed: int) -> Any:
    """The network as a cnnx model (float32, CPU); the zoo's own model where cnnx has one."""
    import numpy as np

    import cnnx
    from cnnx import nn

    _, _, spec, zoo_name = NETWORKS[name]
    if zoo_name is not None:
        model = cnnx.models.get(zoo_name, seed=seed)
        check_against_zoo(name, model)
        return model
    rng = np.random.default_rng(seed)
    layers = []
    for layer in spec:
        kind = layer[0]
        if kind == "conv":
            _, cin, cout, k, pad = layer
            layers.append(nn.Conv2D(cin, cout, k, padding=pad, init="he", rng=rng))
        elif kind == "relu":
            layers.append(nn.ReLU(inplace=True))
        elif kind == "pool":
            layers.append(nn.MaxPool2D(layer[1]))
        elif kind == "dropout":
            layers.append(nn.Dropout(layer[1], rng=np.random.default_rng(seed + 1 + len(layers))))
        elif kind == "flatten":
            layers.append(nn.Flatten())
        elif kind == "linear":
            _, fin, fout = layer
            layers.append(nn.Linear(fin, fout, init="he", rng=rng))
        else:
            raise ValueError(f"unknown layer spec {layer!r}")
    return nn.Sequential(*layers)


def check_against_zoo(name: str, model: Any) -> None:
    """Raise if the spec of ``name`` does not have the zoo model's parameter shapes."""
    want = _weight_shapes(NETWORKS[name][2])
    got = [tuple(p.shape) for p in model.parameters()]
    if want != got:
        raise RuntimeError(f"bench zoo spec {name!r} has parameters {want}, cnnx's model {got}")


def build_torch(name: str, seed: int) -> Any:
    """The network in PyTorch, with the same initial weights as :func:`build_cnnx`."""
    import numpy as np
    import torch
    from torch import nn

    _, _, spec, _ = NETWORKS[name]
    layers: list[Any] = []
    for layer in spec:
        kind = layer[0]
        if kind == "conv":
            _, cin, cout, k, pad = layer
            layers.append(nn.Conv2d(cin, cout, k, padding=pad))
        elif kind == "relu":
            layers.append(nn.ReLU(inplace=True))
        elif kind == "pool":
            layers.append(nn.MaxPool2d(layer[1]))
        elif kind == "dropout":
            layers.append(nn.Dropout(layer[1]))
        elif kind == "flatten":
            layers.append(nn.Flatten())
        elif kind == "linear":
            layers.append(nn.Linear(layer[1], layer[2]))
        else:
            raise ValueError(f"unknown layer spec {layer!r}")
    model = nn.Sequential(*layers)
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv2d | nn.Linear):
                w = module.weight
                fan_in = int(np.prod(w.shape[1:]))
                values = rng.standard_normal(tuple(w.shape)) * (2.0 / fan_in) ** 0.5
                w.copy_(torch.from_numpy(values.astype(np.float32)))
                module.bias.zero_()
    return model
