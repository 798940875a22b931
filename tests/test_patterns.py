"""Tests of the 11×11 three-class toy pattern set."""

from __future__ import annotations

import numpy as np
import pytest

from cnnx.datasets.patterns import PATTERN_CLASSES, base_patterns, make_patterns


def shifted(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Reference shift by a plain loop: pixels moved in from outside are 0."""
    h, w = image.shape
    out = np.zeros_like(image)
    for r in range(h):
        for c in range(w):
            if 0 <= r - dy < h and 0 <= c - dx < w:
                out[r, c] = image[r - dy, c - dx]
    return out


def test_shape_dtype_range_and_balanced_interleaved_labels():
    X, y = make_patterns()
    assert X.shape == (120, 1, 11, 11) and X.dtype == np.float32
    assert y.shape == (120,) and y.dtype == np.int64
    assert set(np.unique(X).tolist()) == {0.0, 1.0}
    assert np.bincount(y).tolist() == [40, 40, 40]
    assert y[:6].tolist() == [0, 1, 2, 0, 1, 2]
    assert len(PATTERN_CLASSES) == 3


def test_same_seed_same_data_and_different_seeds_differ():
    X1, y1 = make_patterns(seed=7)
    X2, y2 = make_patterns(seed=7)
    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_array_equal(y1, y2)
    X3, _ = make_patterns(seed=8)
    assert not np.array_equal(X1, X3)


def test_base_patterns_are_binary_and_distinct():
    for size in (5, 8, 11, 16):
        bases = base_patterns(size)
        assert bases.shape == (3, size, size) and bases.dtype == np.float32
        for a in range(3):
            assert bases[a].sum() > 0
            for b in range(a + 1, 3):
                assert np.abs(bases[a] - bases[b]).sum() >= size  # far apart


def test_without_noise_or_shift_every_sample_is_its_base_pattern():
    X, y = make_patterns(n_per_class=4, noise=0.0, max_shift=0, seed=1)
    np.testing.assert_array_equal(X[:, 0], base_patterns(11)[y])


def test_without_noise_every_sample_is_a_shift_of_its_base_pattern():
    X, y = make_patterns(n_per_class=20, noise=0.0, max_shift=2, seed=2)
    bases = base_patterns(11)
    shifts_seen = set()
    for image, label in zip(X[:, 0], y, strict=True):
        matches = [
            (dy, dx)
            for dy in range(-2, 3)
            for dx in range(-2, 3)
            if np.array_equal(image, shifted(bases[label], dy, dx))
        ]
        assert matches, "sample is not a shifted copy of its base pattern"
        shifts_seen.update(matches)
    assert len(shifts_seen) > 10  # shifts really vary


def test_noise_flips_about_the_requested_share_of_pixels():
    X, y = make_patterns(n_per_class=100, noise=0.1, max_shift=0, seed=3)
    flipped = np.abs(X[:, 0] - base_patterns(11)[y]).mean()
    assert 0.09 < flipped < 0.11


def test_other_sizes():
    X, y = make_patterns(n_per_class=2, size=16, seed=0)
    assert X.shape == (6, 1, 16, 16)
    X, y = make_patterns(n_per_class=1, size=5, max_shift=1, seed=0)
    assert X.shape == (3, 1, 5, 5) and y.tolist() == [0, 1, 2]


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"n_per_class": 0}, ValueError, "n_per_class"),
        ({"n_per_class": 2.0}, TypeError, "n_per_class"),
        ({"size": 4}, ValueError, "size"),
        ({"size": "11"}, TypeError, "size"),
        ({"noise": -0.1}, ValueError, "noise"),
        ({"noise": 0.6}, ValueError, "noise"),
        ({"noise": float("nan")}, ValueError, "noise"),
        ({"noise": None}, TypeError, "noise"),
        ({"seed": -1}, ValueError, "seed"),
        ({"seed": 0.5}, TypeError, "seed"),
        ({"max_shift": -1}, ValueError, "max_shift"),
        ({"max_shift": 3}, ValueError, "max_shift"),
        ({"max_shift": True}, TypeError, "max_shift"),
    ],
)
def test_arguments_are_checked(kwargs, error, name):
    with pytest.raises(error, match=name):
        make_patterns(**kwargs)


def test_classes_are_balanced_for_any_size_and_seed():
    for n_per_class, seed in [(1, 0), (7, 3), (24, 11)]:
        _, y = make_patterns(n_per_class=n_per_class, seed=seed)
        assert np.bincount(y, minlength=3).tolist() == [n_per_class] * 3


def test_same_arguments_give_the_same_bytes_every_time():
    first = make_patterns(n_per_class=24, noise=0.05, max_shift=1, seed=0)
    for _ in range(2):
        again = make_patterns(n_per_class=24, noise=0.05, max_shift=1, seed=0)
        assert first[0].tobytes() == again[0].tobytes()
        assert first[1].tobytes() == again[1].tobytes()


def test_toy_preset_split_is_14_train_and_10_test_per_class_for_every_seed():
    from cnnx.datasets import stratified_split
    from cnnx.experiment.grid import TOY_PATTERNS, TOY_VAL_FRACTION

    _, y = make_patterns(**TOY_PATTERNS)
    for seed in range(5):
        train_idx, test_idx = stratified_split(y, TOY_VAL_FRACTION, seed=seed)
        assert np.bincount(y[train_idx]).tolist() == [14, 14, 14]
        assert np.bincount(y[test_idx]).tolist() == [10, 10, 10]
