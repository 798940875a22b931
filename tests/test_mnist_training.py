"""Real data: the MNIST CNN learns the real MNIST test set (train on 8,000, test on 2,000).

Runs whenever CNNX_DATA_DIR is set (CI sets it to the shared MNIST test set);
a missing file is then a failure, not a skip.
"""

from __future__ import annotations

import os

import pytest

import cnnx

pytestmark = pytest.mark.skipif(
    not os.environ.get("CNNX_DATA_DIR"),
    reason="CNNX_DATA_DIR is not set (point it at a directory holding mnist/t10k-*)",
)


def test_mnist_cnn_reaches_93_percent_on_held_out_images():
    X, y = cnnx.datasets.load_mnist("test", download=False)
    assert X.shape == (10000, 1, 28, 28)
    model = cnnx.models.get("mnist_cnn", seed=0)
    opt = cnnx.optim.Adam(model.named_parameters(), lr=1e-3)
    history = cnnx.fit(
        model, opt, (X[:8000], y[:8000]), (X[8000:], y[8000:]), epochs=3, batch_size=64, seed=0
    )
    accuracy = history.final.val_accuracy
    print(f"mnist_cnn, 3 epochs on 8,000 images: held-out accuracy {accuracy:.4f}")
    assert accuracy >= 0.93
    assert cnnx.evaluate(model, X[8000:], y[8000:]).accuracy == pytest.approx(accuracy)
