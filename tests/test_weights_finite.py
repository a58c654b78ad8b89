"""`weights_finite`: one rank's NaN weight stops every rank (else the others would wait for it
in their next all-reduce, for ever)."""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn

from deepnets.worker import weights_finite


def _rank(rank: int, store_file: str, broken_rank: int | None, results) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store_file}", rank=rank, world_size=2)
    try:
        model = nn.Linear(3, 2)
        if rank == broken_rank:
            with torch.no_grad():
                model.weight[0, 0] = float("nan")
        results[rank] = weights_finite(model)
    finally:
        dist.destroy_process_group()


def _all_ranks(tmp_path, broken_rank: int | None) -> list[bool]:
    results = mp.get_context("spawn").Manager().dict()
    store = str(tmp_path / f"store-{broken_rank}")
    mp.spawn(_rank, args=(store, broken_rank, results), nprocs=2, join=True)
    return [results[0], results[1]]


def test_one_ranks_nan_weight_stops_every_rank(tmp_path):
    assert _all_ranks(tmp_path, broken_rank=1) == [False, False]
    assert _all_ranks(tmp_path, broken_rank=None) == [True, True]


def test_one_process_checks_its_own_weights():
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    assert weights_finite(model)
    with torch.no_grad():
        model[1].bias[0] = float("inf")
    assert not weights_finite(model)
