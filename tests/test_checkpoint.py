"""Checkpoint files: a crash mid-write never replaces the last good state; loads refuse code."""

from __future__ import annotations

import pickle

import pytest
import torch

from deepnets import checkpoint
from deepnets.checkpoint import STATE_FILE, load_state, save_state


def test_a_crash_mid_write_leaves_the_last_good_state(tmp_path, monkeypatch):
    save_state(tmp_path, {"epoch": 1, "weights": torch.ones(3)})

    def crash_after_half(state, path):
        with open(path, "wb") as f:
            f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint.torch, "save", crash_after_half)
    with pytest.raises(OSError, match="disk full"):
        save_state(tmp_path, {"epoch": 2, "weights": torch.zeros(3)})
    state = load_state(tmp_path)  # still the whole epoch-1 state, not the partial epoch 2
    assert state["epoch"] == 1 and torch.equal(state["weights"], torch.ones(3))


class Payload:
    def __reduce__(self):  # what a malicious checkpoint would carry: code run at load time
        return (print, ("pwned",))


def test_loads_refuse_pickled_code(tmp_path):
    with open(tmp_path / STATE_FILE, "wb") as f:
        pickle.dump({"epoch": 1, "payload": Payload()}, f)
    with pytest.raises(pickle.UnpicklingError):
        load_state(tmp_path)
