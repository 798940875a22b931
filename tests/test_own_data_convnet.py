"""The generic ``convnet`` preset: sized from the data, seeded on the host, rebuildable."""

from __future__ import annotations

import numpy as np
import pytest

from cnnx import models
from cnnx.checkpoint import load_checkpoint


@pytest.mark.parametrize(
    ("channels", "image_size", "pooled"),
    [(1, 8, (4, 4)), (1, 28, (7, 7)), (3, 32, (4, 4)), (3, 64, (4, 4)), (1, 6, (3, 3)),
     (1, (20, 40), (5, 10)), (1, 1, (1, 1))],
)  # fmt: skip
def test_convnet_fits_the_data_shape(channels, image_size, pooled):
    model = models.get("convnet", channels=channels, image_size=image_size, num_classes=5)
    size = (image_size, image_size) if isinstance(image_size, int) else image_size
    assert model.input_shape == (channels, *size)
    x = np.random.default_rng(0).random((2, channels, *size)).astype(np.float32)
    assert model(x).shape == (2, 5)
    flatten = next(i for i, layer in enumerate(model) if type(layer).__name__ == "Flatten")
    probe = x
    for layer in list(model)[:flatten]:
        probe = layer(probe)
    assert probe.shape[2:] == pooled


def test_convnet_weights_come_from_the_seed():
    a = models.get("convnet", image_size=8, seed=3).state_dict()
    b = models.get("convnet", image_size=8, seed=3).state_dict()
    c = models.get("convnet", image_size=8, seed=4).state_dict()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not all(np.array_equal(a[k], c[k]) for k in a)
    assert models.canonical_name("generic") == "convnet"


def test_convnet_rebuilds_from_a_checkpoint(tmp_path):
    model = models.get("convnet", channels=3, image_size=(12, 16), num_classes=4, seed=1)
    model.save(tmp_path / "m.npz")
    again = load_checkpoint(tmp_path / "m.npz").build_model()
    assert again.input_shape == (3, 12, 16) and again.num_classes == 4
    x = np.random.default_rng(1).random((2, 3, 12, 16)).astype(np.float32)
    np.testing.assert_array_equal(again(x), model(x))


@pytest.mark.parametrize(
    ("options", "message"),
    [({"image_size": 0}, "image_size"), ({"num_classes": 1}, "num_classes"),
     ({"channels": 0}, "channels"), ({"image_size": (3, 4, 5)}, "image_size")],
)  # fmt: skip
def test_convnet_rejects_bad_sizes(options, message):
    with pytest.raises(ValueError, match=f"convnet {message}"):
        models.get("convnet", **options)


def test_data_options_size_only_data_sized_models():
    assert models.data_options("convnet", (3, 12, 16), 4) == {
        "channels": 3,
        "image_size": [12, 16],
        "num_classes": 4,
    }
    assert models.data_options("generic", (1, 8, 8), 10)["image_size"] == [8, 8]
    assert models.data_options("mnist_cnn", (1, 28, 28), 10) == {}
    model = models.get("convnet", seed=0, **models.data_options("convnet", (1, 8, 8), 10))
    assert model.input_shape == (1, 8, 8) and model.num_classes == 10
