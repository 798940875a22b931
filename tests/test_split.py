"""Tests of the stratified train/validation split."""

from __future__ import annotations

import numpy as np
import pytest

from cnnx.datasets.split import stratified_split


def labels_96() -> np.ndarray:
    return np.random.default_rng(5).permutation(np.repeat(np.arange(3), 32))


def check_partition(y, train_idx, val_idx) -> None:
    assert train_idx.dtype == np.int64 and val_idx.dtype == np.int64
    assert np.all(np.diff(train_idx) > 0) and np.all(np.diff(val_idx) > 0)  # sorted, unique
    assert np.intersect1d(train_idx, val_idx).size == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([train_idx, val_idx])), np.arange(len(y)))


def test_32_per_class_gives_6_per_class_for_validation():
    y = labels_96()
    train_idx, val_idx = stratified_split(y, 0.2, seed=0)
    check_partition(y, train_idx, val_idx)
    assert np.bincount(y[val_idx], minlength=3).tolist() == [6, 6, 6]
    assert np.bincount(y[train_idx], minlength=3).tolist() == [26, 26, 26]


def test_uneven_classes_are_split_in_proportion_half_rounding_up():
    y = np.array([0] * 10 + [1] * 5 + [2] * 3 + [7] * 4)
    train_idx, val_idx = stratified_split(y, 0.3, seed=2)
    check_partition(y, train_idx, val_idx)
    counts = {int(c): int((y[val_idx] == c).sum()) for c in np.unique(y)}
    # 10*0.3 = 3, 5*0.3 = 1.5 -> 2, 3*0.3 = 0.9 -> 1, 4*0.3 = 1.2 -> 1
    assert counts == {0: 3, 1: 2, 2: 1, 7: 1}


def test_same_seed_same_split_and_different_seeds_differ():
    y = labels_96()
    a = stratified_split(y, 0.2, seed=3)
    b = stratified_split(y.copy(), 0.2, seed=3)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    others = {tuple(stratified_split(y, 0.2, seed=s)[1].tolist()) for s in range(10)}
    assert len(others) == 10


def test_zero_fraction_keeps_everything_for_training():
    y = labels_96()
    train_idx, val_idx = stratified_split(y, 0.0)
    assert val_idx.size == 0
    np.testing.assert_array_equal(train_idx, np.arange(96))


def test_a_class_keeps_at_least_one_training_sample():
    y = np.array([0, 0, 0, 0, 1])
    train_idx, val_idx = stratified_split(y, 0.6, seed=0)
    check_partition(y, train_idx, val_idx)
    assert 4 in train_idx.tolist()  # the only 1 stays in training
    assert (y[val_idx] == 0).sum() == 2  # 4 * 0.6 = 2.4 -> 2


def test_works_on_lists_and_empty_labels():
    train_idx, val_idx = stratified_split([1, 1, 2, 2, 2, 1, 2, 1, 1, 2], 0.2, seed=0)
    assert len(val_idx) == 2 and len(train_idx) == 8
    train_idx, val_idx = stratified_split(np.array([], dtype=np.int64))
    assert train_idx.size == 0 and val_idx.size == 0


@pytest.mark.parametrize("fraction", [1.0, 1.5, -0.1, float("nan"), float("inf")])
def test_fraction_out_of_range(fraction):
    with pytest.raises(ValueError, match="val_fraction"):
        stratified_split(labels_96(), fraction)


@pytest.mark.parametrize("fraction", ["0.2", None, True])
def test_fraction_of_the_wrong_type(fraction):
    with pytest.raises(TypeError, match="val_fraction"):
        stratified_split(labels_96(), fraction)


def test_labels_must_be_1d_integers():
    with pytest.raises(ValueError, match="y must be a 1-D"):
        stratified_split(np.zeros((4, 2), dtype=np.int64))
    with pytest.raises(TypeError, match="y must hold integer"):
        stratified_split(np.array([0.0, 1.0, 2.0]))


@pytest.mark.parametrize(
    ("seed", "error"), [(-1, ValueError), (1.5, TypeError), ("0", TypeError), (True, TypeError)]
)
def test_seed_is_checked(seed, error):
    with pytest.raises(error, match="seed"):
        stratified_split(labels_96(), 0.2, seed=seed)


def test_numpy_integer_seed_is_accepted():
    y = labels_96()
    np.testing.assert_array_equal(
        stratified_split(y, 0.2, seed=np.int64(4))[1], stratified_split(y, 0.2, seed=4)[1]
    )
