"""cnnx.fit / cnnx.evaluate / cnnx.predict_proba on small synthetic data."""

from __future__ import annotations

import numpy as np
import pytest

import cnnx
from cnnx import nn, optim


def bars(n_per_class=20, seed=0):
    """Three classes of 6×6 images: a bright vertical bar in column pair 0-1, 2-3 or 4-5."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(3), n_per_class)
    X = rng.random((len(y), 1, 6, 6), dtype=np.float32) * 0.4
    for i, c in enumerate(y):
        X[i, 0, :, 2 * c : 2 * c + 2] += 0.6
    order = rng.permutation(len(y))
    return X[order], y[order]


def make(seed=0, lr=0.05):
    model = cnnx.models.get("simple_cnn", seed=seed)
    return model, optim.Adam(model.named_parameters(), lr=lr)


def test_fit_learns_and_records_every_epoch(device):
    X, y = bars()
    model, opt = make()
    history = cnnx.fit(model, opt, (X[:48], y[:48]), (X[48:], y[48:]), epochs=150, device=device)
    assert len(history) == 150
    assert [r.epoch for r in history] == list(range(1, 151))
    assert history.loss[-1] < history.loss[0]
    assert history.final.accuracy == 1.0
    assert history.final.val_accuracy == 1.0
    assert all(s > 0 for s in history.seconds)
    result = cnnx.evaluate(model, X, y, device=device)
    assert result.accuracy == 1.0
    assert result.loss == pytest.approx(history.final.val_loss, rel=0.5)


def test_minibatch_fit_counts_every_sample_once_per_epoch(device):
    X, y = bars()
    seen = []
    model, opt = make()
    cnnx.fit(model, opt, (X, y), epochs=2, batch_size=16, device=device, on_batch=seen.append)
    assert seen == [16, 16, 16, 12] * 2
    assert opt.step_count == 8


def test_same_seed_same_history_and_weights(device):
    X, y = bars()
    runs = []
    for _ in range(2):
        model, opt = make(seed=3)
        h = cnnx.fit(model, opt, (X[:40], y[:40]), (X[40:], y[40:]), epochs=5, batch_size=8,
                     seed=11, device=device)  # fmt: skip
        runs.append(
            ([(r.loss, r.accuracy, r.val_loss, r.val_accuracy) for r in h], model.state_dict())
        )
    assert runs[0][0] == runs[1][0]
    for key in runs[0][1]:
        np.testing.assert_array_equal(runs[0][1][key], runs[1][1][key])


def test_shuffle_seed_changes_the_minibatch_order():
    X, y = bars()
    results = []
    for seed in (0, 1):
        model, opt = make()
        cnnx.fit(model, opt, (X, y), epochs=1, batch_size=8, seed=seed)
        results.append(model.state_dict()["0.weight"])
    assert not np.array_equal(results[0], results[1])


def test_divergence_stops_with_the_epoch_and_last_finite_loss():
    X, y = bars()
    model = nn.Sequential(nn.Flatten(), nn.Linear(36, 3, rng=0))
    opt = optim.SGD(model.named_parameters(), lr=1e38)
    with pytest.raises(cnnx.TrainingDiverged) as info:
        with np.errstate(all="ignore"):
            cnnx.fit(model, opt, (X, y), epochs=50)
    err = info.value
    assert err.epoch >= 2
    assert err.last_finite_loss is not None and np.isfinite(err.last_finite_loss)
    assert f"epoch {err.epoch}" in str(err)
    assert "last finite loss" in str(err)


def test_on_epoch_returning_true_stops_early():
    X, y = bars()
    model, opt = make()
    history = cnnx.fit(model, opt, (X, y), epochs=100, on_epoch=lambda r: r.epoch == 3)
    assert len(history) == 3


@pytest.mark.parametrize(
    ("train", "message"),
    [
        (
            (np.zeros((4, 1, 6, 6), dtype=np.float32), np.zeros(3, dtype=np.int64)),
            "4 samples but y has 3",
        ),
        ((np.zeros((4, 1, 6, 6), dtype=np.float32), np.zeros(4)), "1-D integer label array"),
        ((np.zeros((4, 1, 6, 6), dtype=np.int64), np.zeros(4, dtype=np.int64)), "floating-point"),
        ((np.zeros((0, 1, 6, 6), dtype=np.float32), np.zeros(0, dtype=np.int64)), "empty"),
        (
            (np.zeros((2, 1, 6, 6), dtype=np.float32), np.array([0, 5])),
            "label 5 but the model outputs 3",
        ),
        ((np.zeros((2, 1, 6, 6), dtype=np.float32), np.array([0, -1])), "negative label"),
    ],
)
def test_bad_training_data_is_named(train, message):
    model, opt = make()
    with pytest.raises(ValueError, match=message):
        cnnx.fit(model, opt, train, epochs=1)


def test_bad_arguments():
    X, y = bars()
    model, opt = make()
    with pytest.raises(ValueError, match="epochs must be a positive integer"):
        cnnx.fit(model, opt, (X, y), epochs=0)
    with pytest.raises(ValueError, match="batch_size"):
        cnnx.fit(model, opt, (X, y), epochs=1, batch_size=0)


def test_resuming_with_initial_epoch_and_rng_equals_one_long_run():
    X, y = bars()
    model_a, opt_a = make()
    full = cnnx.fit(model_a, opt_a, (X, y), epochs=6, batch_size=8, seed=5)

    model_b, opt_b = make()
    rng = np.random.default_rng(5)
    first = cnnx.fit(model_b, opt_b, (X, y), epochs=3, batch_size=8, rng=rng)
    second = cnnx.fit(model_b, opt_b, (X, y), epochs=6, batch_size=8, rng=rng, initial_epoch=3)
    assert [r.epoch for r in second] == [4, 5, 6]
    assert [r.loss for r in first] + [r.loss for r in second] == full.loss
    for key, value in model_a.state_dict().items():
        np.testing.assert_array_equal(value, model_b.state_dict()[key])


def test_evaluate_runs_in_batches_and_restores_the_mode():
    X, y = bars()
    model, _ = make()
    model.train()
    whole = cnnx.evaluate(model, X, y, batch_size=1000)
    pieces = cnnx.evaluate(model, X, y, batch_size=7)
    assert model.training
    assert whole.accuracy == pieces.accuracy
    assert whole.loss == pytest.approx(pieces.loss, rel=1e-6)


def test_predict_proba_rows_sum_to_one_and_argmax_matches_evaluate(device):
    X, y = bars()
    model, opt = make()
    cnnx.fit(model, opt, (X, y), epochs=100, device=device)
    probs = cnnx.predict_proba(model, X, batch_size=16)
    assert probs.shape == (len(y), 3) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert (probs.argmax(axis=1) == y).mean() == cnnx.evaluate(model, X, y).accuracy


def test_history_accessors():
    h = cnnx.History([cnnx.EpochRecord(1, 1.0, 0.5, None, None, 0.1)])
    assert h.to_dicts() == [
        {
            "epoch": 1,
            "loss": 1.0,
            "accuracy": 0.5,
            "val_loss": None,
            "val_accuracy": None,
            "seconds": 0.1,
        }
    ]
    assert "1 epochs" in repr(h)
    with pytest.raises(IndexError):
        _ = cnnx.History().final
