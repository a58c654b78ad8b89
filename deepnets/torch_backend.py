"""Ray Train's torch backend, without torch in the processes that only orchestrate.

`TorchTrainer` takes a `TorchConfig`, whose module imports torch. So Tune's trial process (which
builds the trainer) and Ray Train's controller (which unpickles the config and runs the
backend's `on_start`) each import torch, although neither ever touches a tensor: ~1.5
CPU-seconds per process per trial on the 2-core machine, more where torch loads CUDA's
libraries (BENCHMARKS.md, "Fixed cost of a sweep").

`TorchBackendConfig` is the same backend with every torch step run in the Train workers, by
Ray's own functions (`ray.train.torch.config`), imported there. It follows Ray 2.60's
`_TorchBackend` for CPUs and GPUs (gloo or nccl, `env://` rendezvous); TPUs are not supported.
tests/test_torch_backend.py pins the Ray functions it calls, and that building a trainer and
unpickling its config import no torch.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import ray
from ray._private import ray_constants
from ray.exceptions import GetTimeoutError
from ray.train._internal.utils import get_address_and_port
from ray.train.backend import Backend, BackendConfig
from ray.train.constants import (
    DEFAULT_TORCH_PROCESS_GROUP_SHUTDOWN_TIMEOUT_S,
    TORCH_PROCESS_GROUP_SHUTDOWN_TIMEOUT_S,
)
from ray.train.v2._internal.util import TrainingFramework

logger = logging.getLogger(__name__)

# The steps of ray.train.torch.config this backend runs in the workers (pinned by a test).
RAY_TORCH_STEPS = (
    "_set_torch_distributed_env_vars",
    "_setup_torch_process_group",
    "_shutdown_torch",
)


def in_worker(step: str, **kwargs):
    """Ray's torch set-up step `step`, run where torch belongs: in a Train worker."""
    from ray.train.torch import config

    return getattr(config, step)(**kwargs)


def set_rendezvous(addr: str, port: int) -> None:
    os.environ["MASTER_ADDR"] = addr
    os.environ["MASTER_PORT"] = str(port)


class CudaDeviceContext:
    """Around the training function in each worker: Ray's own context manager, which makes the
    worker's GPU torch's default device."""

    def __enter__(self):
        from ray.train.torch.config import TorchConfigContextManager

        TorchConfigContextManager().__enter__()

    def __exit__(self, *exc_info) -> bool:
        return False


@dataclass
class TorchBackendConfig(BackendConfig):
    backend: str = "gloo"  # "nccl" where the workers have GPUs
    timeout_s: int = 1800  # of process-group operations, as TorchConfig's

    @classmethod
    def for_devices(cls, use_gpu: bool) -> TorchBackendConfig:
        return cls(backend="nccl" if use_gpu else "gloo")

    @property
    def backend_cls(self):
        return TorchBackend

    @property
    def train_func_context(self):
        return CudaDeviceContext

    @property
    def framework(self):
        return TrainingFramework.TORCH

    def to_dict(self) -> dict:
        return {"backend": self.backend, "init_method": "env", "timeout_s": self.timeout_s}


class TorchBackend(Backend):
    share_cuda_visible_devices: bool = True  # as Ray's: a node's workers see its run's GPUs

    def on_start(self, worker_group, backend_config: TorchBackendConfig) -> None:
        """Rank 0's address and a free port, the torch environment variables every rank needs
        before `init_process_group`, then the process group on all ranks at once."""
        addr, port = worker_group.execute_single(0, get_address_and_port)
        worker_group.execute(set_rendezvous, addr=addr, port=port)
        worker_group.execute(in_worker, "_set_torch_distributed_env_vars")
        ranks = range(len(worker_group))
        setups = [
            worker_group.execute_single_async(
                rank,
                in_worker,
                "_setup_torch_process_group",
                backend=backend_config.backend,
                world_rank=rank,
                world_size=len(ranks),
                init_method="env://",
                timeout_s=backend_config.timeout_s,
            )
            for rank in ranks
        ]
        ray.get(setups)

    def on_shutdown(self, worker_group, backend_config: TorchBackendConfig) -> None:
        shutdowns = worker_group.execute_async(
            in_worker, "_shutdown_torch", destroy_process_group=len(worker_group) > 1
        )
        timeout_s = ray_constants.env_integer(
            TORCH_PROCESS_GROUP_SHUTDOWN_TIMEOUT_S, DEFAULT_TORCH_PROCESS_GROUP_SHUTDOWN_TIMEOUT_S
        )
        try:
            ray.get(shutdowns, timeout=timeout_s)
        except GetTimeoutError:
            logger.warning(f"torch process group shutdown timed out after {timeout_s} s")
