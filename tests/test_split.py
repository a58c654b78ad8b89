"""The stratified split: exact sizes, proportions within one item, every class on both sides."""

import numpy as np
import pytest

from deepnets.data.split import StratifyError, stratified_pick


def _labels(counts):
    return np.repeat(np.arange(len(counts)), counts)


@pytest.mark.parametrize("size", [10, 37, 180, 299])
def test_parts_are_disjoint_complete_and_proportional(size):
    labels = _labels([100, 60, 30, 10, 100])
    picked, rest = stratified_pick(labels, size, seed=0)
    assert len(picked) == size and len(np.intersect1d(picked, rest)) == 0
    assert sorted(np.concatenate([picked, rest]).tolist()) == list(range(len(labels)))
    share = np.bincount(labels[picked], minlength=5)
    expected = np.array([100, 60, 30, 10, 100]) * size / len(labels)
    assert np.all(np.abs(share - expected) <= 1.0 + 1e-9)


def test_a_rare_class_gets_a_place_on_both_sides():
    labels = _labels([500, 500, 2])
    picked, rest = stratified_pick(labels, 10, seed=0, both_sides=True)
    assert set(labels[picked]) == {0, 1, 2} and set(labels[rest]) == {0, 1, 2}


def test_seeded_and_seed_dependent():
    labels = _labels([50] * 10)
    first, again, other = (stratified_pick(labels, 100, seed)[0] for seed in (3, 3, 4))
    assert np.array_equal(first, again) and not np.array_equal(first, other)


def test_a_subset_need_not_leave_every_class_behind():
    picked, rest = stratified_pick(_labels([100, 10]), 109, seed=0)
    assert len(rest) == 1 and set(_labels([100, 10])[picked]) == {0, 1}


@pytest.mark.parametrize("size", [0, 5, 500])
def test_impossible_sizes_are_refused(size):
    with pytest.raises(StratifyError):
        stratified_pick(_labels([50] * 10), size, seed=0)


def test_a_rest_too_small_for_every_class_is_refused():
    with pytest.raises(StratifyError, match="cannot hold every class"):
        stratified_pick(_labels([50] * 10), 495, seed=0, both_sides=True)
