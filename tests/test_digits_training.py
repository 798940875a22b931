"""Real data: report 000's best configuration learns the bundled 6×6 digits."""

from __future__ import annotations

import cnnx


def test_simple_cnn_with_adam_defaults_reaches_90_percent_validation_accuracy():
    X, y = cnnx.datasets.load_digits6x6()
    train, val = cnnx.datasets.stratified_split(y, 0.2, seed=0)
    model = cnnx.models.get("simple_cnn", seed=0)
    opt = cnnx.optim.Adam(model.named_parameters(), lr=0.01, beta1=0.7, beta2=0.99)
    history = cnnx.fit(model, opt, (X[train], y[train]), (X[val], y[val]), epochs=300, seed=0)
    print(f"SimpleCNN + Adam, 300 epochs, seed 0: val accuracy {history.final.val_accuracy:.4f}")
    assert len(val) == 18
    assert history.final.val_accuracy >= 0.90
