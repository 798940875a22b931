"""The models of the research cnnx grew from, each a registered constructor.

Every constructor takes ``seed`` and draws all initial weights, layer by layer,
from one ``numpy.random.Generator(seed)``, so the same seed gives the same
network on any device.
"""

from __future__ import annotations

import numpy as np

from cnnx.models.model import Model
from cnnx.models.registry import register
from cnnx.nn import Conv2D, Flatten, Linear, MaxPool2D, ReLU, Sigmoid


@register(
    "simple_cnn",
    "report 000's SimpleCNN for 6×6 digits: Conv 3×3 1→3, Sigmoid, MaxPool 2, "
    "Conv 2×2 3→3, Sigmoid, Flatten (Xavier init)",
    aliases=("simple",),
)
def simple_cnn(seed: int = 0) -> Model:
    rng = np.random.default_rng(seed)
    return Model(
        Conv2D(1, 3, 3, init="xavier", rng=rng),
        Sigmoid(),
        MaxPool2D(2),
        Conv2D(3, 3, 2, init="xavier", rng=rng),
        Sigmoid(),
        Flatten(),
        name="simple_cnn",
        config={"seed": seed},
        input_shape=(1, 6, 6),
        num_classes=3,
    )


@register(
    "enhanced_cnn",
    "report 000's EnhancedCNN for 6×6 digits: Conv 3×3 1→4, ReLU, Conv 3×3 4→4, ReLU, "
    "Conv 2×2 4→3, ReLU, Flatten; no pooling (He init)",
    aliases=("enhanced",),
)
def enhanced_cnn(seed: int = 0) -> Model:
    rng = np.random.default_rng(seed)
    return Model(
        Conv2D(1, 4, 3, init="he", rng=rng),
        ReLU(inplace=True),
        Conv2D(4, 4, 3, init="he", rng=rng),
        ReLU(inplace=True),
        Conv2D(4, 3, 2, init="he", rng=rng),
        ReLU(inplace=True),
        Flatten(),
        name="enhanced_cnn",
        config={"seed": seed},
        input_shape=(1, 6, 6),
        num_classes=3,
    )


@register(
    "mnist_cnn",
    "slides 001's MNIST network: Conv 3×3 1→8, ReLU, MaxPool 2, Conv 3×3 8→16, ReLU, "
    "MaxPool 2, Flatten, Linear 400→10 (He init)",
)
def mnist_cnn(seed: int = 0) -> Model:
    rng = np.random.default_rng(seed)
    return Model(
        Conv2D(1, 8, 3, init="he", rng=rng),
        ReLU(inplace=True),
        MaxPool2D(2),
        Conv2D(8, 16, 3, init="he", rng=rng),
        ReLU(inplace=True),
        MaxPool2D(2),
        Flatten(),
        Linear(400, 10, init="he", rng=rng),
        name="mnist_cnn",
        config={"seed": seed},
        input_shape=(1, 28, 28),
        num_classes=10,
    )


@register(
    "lenet5",
    "LeNet-5 with ReLU and max-pooling: Conv 5×5 1→6 pad 2, MaxPool 2, Conv 5×5 6→16, "
    "MaxPool 2, Linear 400→120→84→10 (He init)",
)
def lenet5(seed: int = 0) -> Model:
    rng = np.random.default_rng(seed)
    return Model(
        Conv2D(1, 6, 5, padding=2, init="he", rng=rng),
        ReLU(inplace=True),
        MaxPool2D(2),
        Conv2D(6, 16, 5, init="he", rng=rng),
        ReLU(inplace=True),
        MaxPool2D(2),
        Flatten(),
        Linear(400, 120, init="he", rng=rng),
        ReLU(inplace=True),
        Linear(120, 84, init="he", rng=rng),
        ReLU(inplace=True),
        Linear(84, 10, init="he", rng=rng),
        name="lenet5",
        config={"seed": seed},
        input_shape=(1, 28, 28),
        num_classes=10,
    )


@register(
    "mlp",
    "the textbook's two-layer net for MNIST: Flatten, Linear 784→hidden, ReLU, "
    "Linear hidden→10 (He init)",
)
def mlp(hidden: int = 100, seed: int = 0) -> Model:
    if hidden < 1:
        raise ValueError(f"mlp hidden must be a positive integer, got {hidden!r}")
    rng = np.random.default_rng(seed)
    return Model(
        Flatten(),
        Linear(784, hidden, init="he", rng=rng),
        ReLU(inplace=True),
        Linear(hidden, 10, init="he", rng=rng),
        name="mlp",
        config={"hidden": hidden, "seed": seed},
        input_shape=(1, 28, 28),
        num_classes=10,
    )


@register(
    "toy_convnet",
    "report 003's ConvNet for the 11×11 pattern set: Conv k×k 1→16 (stride 1, no "
    "pooling), ReLU, Flatten, Linear → 3; weights drawn with std 0.001",
)
def toy_convnet(
    kernel_size: int = 5,
    filters: int = 16,
    image_size: int = 11,
    num_classes: int = 3,
    init_std: float = 0.001,
    seed: int = 0,
) -> Model:
    if not 1 <= kernel_size <= image_size:
        raise ValueError(
            f"toy_convnet kernel_size must be between 1 and image_size={image_size}, "
            f"got {kernel_size!r}"
        )
    rng = np.random.default_rng(seed)
    side = image_size - kernel_size + 1
    return Model(
        Conv2D(1, filters, kernel_size, init=init_std, rng=rng),
        ReLU(inplace=True),
        Flatten(),
        Linear(filters * side * side, num_classes, init=init_std, rng=rng),
        name="toy_convnet",
        config={
            "kernel_size": kernel_size,
            "filters": filters,
            "image_size": image_size,
            "num_classes": num_classes,
            "init_std": init_std,
            "seed": seed,
        },
        input_shape=(1, image_size, image_size),
        num_classes=num_classes,
    )


@register(
    "convnet",
    "a generic CNN sized from the data (channels, image size, classes): blocks of "
    "Conv 3×3 pad 1 (16, 32, 64, 128 filters), ReLU, MaxPool 2 until the image is about "
    "4×4, then Flatten, Linear → hidden, ReLU, Linear → classes (He init)",
    aliases=("generic",),
    sized_from_data=True,
)
def convnet(
    channels: int = 1,
    image_size: int | tuple[int, int] | list[int] = 28,
    num_classes: int = 10,
    width: int = 16,
    hidden: int = 64,
    seed: int = 0,
) -> Model:
    """A small CNN for any ``(channels, H, W)`` input and number of classes.

    One block is Conv 3×3 (padding 1, so the size is kept), ReLU, MaxPool 2. Blocks are
    added while the smaller side is at least 8 after the previous one (at most four;
    always one when the side is at least 2), each with twice the filters of the last
    (``width``, ``2·width``, …). So 8×8 inputs get one block (→ 4×4), 28×28 two
    (→ 7×7), 32×32 three (→ 4×4), 64×64 and larger four.

    Args:
        channels: input channels (1 greyscale, 3 colour).
        image_size: ``H`` or ``(H, W)``.
        num_classes: outputs (at least 2).
        width: filters of the first block.
        hidden: units of the hidden Linear layer; 0 for none.
        seed: seeds the one host Generator all weights are drawn from.
    """
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if len(size) != 2 or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in size):
        raise ValueError(f"convnet image_size must be H or (H, W), positive, got {image_size!r}")
    for name, value, low in (
        ("channels", channels, 1), ("num_classes", num_classes, 2), ("width", width, 1),
        ("hidden", hidden, 0),
    ):  # fmt: skip
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"convnet {name} must be an integer >= {low}, got {value!r}")
    rng = np.random.default_rng(seed)
    h, w = size
    layers = []
    c_in, c_out = channels, width
    for block in range(4):
        if block and min(h, w) < 8:
            break
        layers += [Conv2D(c_in, c_out, 3, padding=1, init="he", rng=rng), ReLU(inplace=True)]
        if min(h, w) >= 2:
            layers.append(MaxPool2D(2))
            h, w = h // 2, w // 2
        c_in, c_out = c_out, c_out * 2
    features = c_in * h * w
    layers.append(Flatten())
    if hidden:
        layers += [Linear(features, hidden, init="he", rng=rng), ReLU(inplace=True)]
        features = hidden
    layers.append(Linear(features, num_classes, init="he", rng=rng))
    return Model(
        *layers,
        name="convnet",
        config={
            "channels": channels,
            "image_size": [size[0], size[1]],
            "num_classes": num_classes,
            "width": width,
            "hidden": hidden,
            "seed": seed,
        },
        input_shape=(channels, size[0], size[1]),
        num_classes=num_classes,
    )
