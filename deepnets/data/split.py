"""Stratified, seeded index splits in numpy (scikit-learn's would cost every worker a second).

Each class gets its share of the picked part by largest remainder, so class proportions are
kept to within one item; every class gets a place in the picked part and, when the rest must
hold every class too (a validation split), a class of two or more items is on both sides.
The picked items of each class are the first of a seeded permutation of that class.
"""

from __future__ import annotations

import numpy as np


class StratifyError(ValueError):
    """The split cannot give every class a place (too few items for the classes)."""


def class_quotas(counts: np.ndarray, size: int, both_sides: bool) -> np.ndarray:
    """How many of each class's `counts` items go into a part of `size` items."""
    exact = counts * size / counts.sum()
    quotas = np.floor(exact).astype(np.int64)
    by_remainder = np.argsort(-(exact - quotas), kind="stable")
    quotas[by_remainder[: size - quotas.sum()]] += 1
    # Missing classes get one place (on each side when both_sides); larger classes pay for it.
    missing = quotas == 0
    if both_sides:
        missing = (counts >= 2) & (missing | (quotas == counts))
    for c in np.flatnonzero(missing):
        donor = _donor(counts, quotas, give=quotas[c] == 0)
        if donor is None:
            raise StratifyError(f"{size} of {counts.sum()} items cannot hold every class")
        step = 1 if quotas[c] == 0 else -1
        quotas[c] += step
        quotas[donor] -= step
    return quotas


def _donor(counts: np.ndarray, quotas: np.ndarray, *, give: bool) -> int | None:
    """The class that can best spare a place in the picked part (give) or in the rest."""
    spare = (quotas - 1) if give else (counts - quotas - 1)
    best = int(np.argmax(spare))
    return best if spare[best] > 0 else None


def stratified_pick(
    labels: np.ndarray, size: int, seed: int, *, both_sides: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (picked, rest) index arrays, `size` items picked, class proportions kept."""
    labels = np.asarray(labels)
    if not 0 < size < len(labels):
        raise StratifyError(f"cannot pick {size} of {len(labels)} items")
    classes, codes = np.unique(labels, return_inverse=True)
    if size < len(classes):
        raise StratifyError(f"{size} items cannot hold all {len(classes)} classes")
    quotas = class_quotas(np.bincount(codes), size, both_sides)
    rng = np.random.default_rng(seed)
    picked = [rng.permutation(np.flatnonzero(codes == c))[:q] for c, q in enumerate(quotas)]
    chosen = np.sort(np.concatenate(picked))
    mask = np.ones(len(labels), dtype=bool)
    mask[chosen] = False
    return chosen, np.flatnonzero(mask)
