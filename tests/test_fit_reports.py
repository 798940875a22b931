"""What fit and evaluate report, checked against computations made outside them.

Two small probe layers watch a real training run from inside the model: one at the
input records which samples each minibatch held (every sample's pixels carry its
index), one at the output records the logits fit computed its loss from. The loss,
accuracy and shuffling that fit reports are then recomputed here with NumPy.
"""

from __future__ import annotations

import numpy as np
import pytest

import cnnx
from cnnx import nn, optim
from cnnx.backends import to_host

N_SAMPLES = 22
FEATURES = 6


class Probe(nn.Module):
    """The identity; in training mode it keeps a host copy of every input it sees."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[np.ndarray] = []

    def forward(self, x):
        if self.training:
            self.seen.append(to_host(x).copy())
        return x

    def backward(self, gy):
        return gy


def indexed_data(n=N_SAMPLES, seed=0):
    """``X[i, 0]`` is ``i`` (so a batch tells which samples it holds); labels 0..2."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, FEATURES)).astype(np.float32)
    X[:, 0] = np.arange(n)
    y = rng.integers(0, 3, size=n).astype(np.int64)
    return X, y


def probed_model(seed=0):
    first, last = Probe(), Probe()
    model = nn.Sequential(first, nn.Linear(FEATURES, 3, rng=seed), last)
    return model, first, last


def cross_entropy(logits, labels):
    """Per-sample softmax cross-entropy in float64, written out."""
    z = logits.astype(np.float64)
    z = z - z.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return -log_p[np.arange(len(labels)), labels]


def batch_ids(probe):
    return [batch[:, 0].astype(np.int64) for batch in probe.seen]


# --- the loss and accuracy fit reports ------------------------------------------------


@pytest.mark.parametrize("batch_size", [None, 22, 8, 5, 1], ids=lambda b: f"batch{b}")
def test_reported_loss_and_accuracy_are_per_sample_means_of_what_was_trained_on(batch_size):
    # 22 samples in batches of 8 or 5 leave an uneven last batch (6 or 2): a mean of
    # batch means, or a sum not divided by the sample count, gives another number.
    X, y = indexed_data()
    model, first, last = probed_model()
    opt = optim.Adam(model.named_parameters(), lr=0.1)
    history = cnnx.fit(model, opt, (X, y), epochs=3, batch_size=batch_size, seed=4)
    per_epoch = -(-N_SAMPLES // (batch_size or N_SAMPLES))
    assert len(last.seen) == 3 * per_epoch
    for epoch, record in enumerate(history):
        part = slice(epoch * per_epoch, (epoch + 1) * per_epoch)
        ids = np.concatenate(batch_ids(first)[part])
        logits = np.concatenate(last.seen[part])
        losses = cross_entropy(logits, y[ids])
        assert record.loss == pytest.approx(losses.mean(), rel=1e-5)
        assert record.accuracy == (logits.argmax(axis=1) == y[ids]).mean()
    # the model learns, so the epochs' losses differ: the check above saw three numbers
    assert len(set(history.loss)) == 3


def test_full_batch_loss_is_the_loss_of_the_weights_before_the_update():
    X, y = indexed_data()
    model, _, _ = probed_model()
    expected = cross_entropy(to_host(model(X)), y).mean()
    opt = optim.SGD(model.named_parameters(), lr=0.5)
    history = cnnx.fit(model, opt, (X, y), epochs=1)
    assert history.final.loss == pytest.approx(expected, rel=1e-5)


def test_reported_validation_metrics_are_those_of_the_final_weights_in_eval_mode():
    X, y = indexed_data()
    model = noisy_model()
    opt = optim.Adam(model.named_parameters(), lr=0.05)
    history = cnnx.fit(model, opt, (X[:14], y[:14]), (X[14:], y[14:]), epochs=4, batch_size=5)
    logits = eval_logits(model, X[14:])
    assert history.final.val_loss == pytest.approx(cross_entropy(logits, y[14:]).mean(), rel=1e-5)
    assert history.final.val_accuracy == (logits.argmax(axis=1) == y[14:]).mean()


# --- evaluate: eval mode, with layers that behave differently in it -------------------


def noisy_model(seed=0):
    """Dropout and BatchNorm: both give other outputs in training mode."""
    return nn.Sequential(
        nn.Linear(FEATURES, 16, rng=seed),
        nn.BatchNorm1D(16),
        nn.ReLU(),
        nn.Dropout(0.5, rng=seed + 1),
        nn.Linear(16, 3, rng=seed + 2),
    )


def eval_logits(model, X):
    """Logits in eval mode, by calling each layer by hand (restores the mode)."""
    was_training = model.training
    model.eval()
    try:
        out = X
        for layer in model.children():
            out = layer(out)
        return to_host(out)
    finally:
        model.train(was_training)


def test_evaluate_uses_eval_mode_and_changes_nothing():
    X, y = indexed_data(40)
    model = noisy_model()
    # give batch norm running statistics that differ from any batch's statistics
    opt = optim.Adam(model.named_parameters(), lr=0.05)
    cnnx.fit(model, opt, (X, y), epochs=3, batch_size=7)
    model.train()
    state_before = {k: v.copy() for k, v in model.state_dict().items()}
    expected = eval_logits(model, X)

    result = cnnx.evaluate(model, X, y, batch_size=9)
    assert result.loss == pytest.approx(cross_entropy(expected, y).mean(), rel=1e-5)
    assert result.accuracy == (expected.argmax(axis=1) == y).mean()
    # the same answer twice (no dropout noise), the mode restored, the running
    # statistics untouched
    assert cnnx.evaluate(model, X, y, batch_size=9) == result
    assert model.training
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value, state_before[key], err_msg=key)

    probs = cnnx.predict_proba(model, X, batch_size=9)
    z = expected - expected.max(axis=1, keepdims=True)
    softmax = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(probs, softmax, rtol=1e-5, atol=1e-7)


# --- shuffling, seen from the batches themselves ----------------------------------------


def batches_of_a_run(seed, epochs=4, batch_size=5, shuffle=True):
    X, y = indexed_data()
    model, first, _ = probed_model()
    opt = optim.SGD(model.named_parameters(), lr=0.01)
    cnnx.fit(model, opt, (X, y), epochs=epochs, batch_size=batch_size, seed=seed, shuffle=shuffle)
    per_epoch = -(-N_SAMPLES // batch_size)
    ids = batch_ids(first)
    return [ids[e * per_epoch : (e + 1) * per_epoch] for e in range(epochs)]


def test_every_epoch_is_a_new_permutation_in_batches_of_the_requested_size():
    epochs = batches_of_a_run(seed=7)
    orders = []
    for batches in epochs:
        assert [len(b) for b in batches] == [5, 5, 5, 5, 2]
        order = np.concatenate(batches)
        np.testing.assert_array_equal(np.sort(order), np.arange(N_SAMPLES))  # each once
        orders.append(tuple(order))
    assert len(set(orders)) == len(orders)  # a fresh order every epoch
    compositions = [frozenset(frozenset(b.tolist()) for b in batches) for batches in epochs]
    assert len(set(compositions)) == len(compositions)  # not only the batches reordered
    assert orders[0] != tuple(range(N_SAMPLES))


def test_same_seed_same_batches_other_seed_other_batches():
    a, b, c = batches_of_a_run(seed=3), batches_of_a_run(seed=3), batches_of_a_run(seed=4)
    flat = [[tuple(batch) for batch in epoch] for epoch in a]
    assert flat == [[tuple(batch) for batch in epoch] for epoch in b]
    assert flat != [[tuple(batch) for batch in epoch] for epoch in c]


def test_shuffle_false_keeps_the_data_order():
    for batches in batches_of_a_run(seed=3, epochs=2, shuffle=False):
        np.testing.assert_array_equal(np.concatenate(batches), np.arange(N_SAMPLES))
