"""Optimizer and learning-rate schedule from their configs; schedules step once per batch."""

from __future__ import annotations

import math

import torch
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, OneCycleLR

from deepnets.config import OptimConfig, ScheduleConfig


def build_optimizer(params, cfg: OptimConfig) -> torch.optim.Optimizer:
    if cfg.name == "sgd":
        return torch.optim.SGD(
            params,
            lr=cfg.lr,
            momentum=cfg.momentum,
            nesterov=cfg.nesterov,
            weight_decay=cfg.weight_decay,
        )
    if cfg.name == "rmsprop":
        return torch.optim.RMSprop(
            params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
        )
    if cfg.name == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def lr_multiplier(cfg: ScheduleConfig, step: int, steps_per_epoch: int, epochs: int) -> float:
    """The factor applied to the base lr after `step` optimizer steps (none/cosine/step)."""
    warmup = cfg.warmup_epochs * steps_per_epoch
    if step < warmup:
        return (step + 1) / warmup  # linear from ~0 up to 1
    if cfg.name == "cosine":
        total = max(1.0, epochs * steps_per_epoch - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - warmup) / total)))
    if cfg.name == "step":
        return cfg.gamma ** (step // (cfg.step_epochs * steps_per_epoch))
    return 1.0


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: ScheduleConfig, *, epochs: int, steps_per_epoch: int
) -> LRScheduler:
    """The schedule, tagged with the total number of steps it was planned for."""
    scheduler = _scheduler(optimizer, cfg, epochs=epochs, steps_per_epoch=steps_per_epoch)
    scheduler.total_steps_planned = epochs * steps_per_epoch
    return scheduler


def _scheduler(optimizer, cfg: ScheduleConfig, *, epochs: int, steps_per_epoch: int):
    if cfg.name == "onecycle":
        # One-cycle's own warm-up is its rising phase; warmup_epochs sets its length if given.
        rise = cfg.warmup_epochs / epochs if cfg.warmup_epochs else 0.3
        return OneCycleLR(
            optimizer,
            max_lr=[group["lr"] for group in optimizer.param_groups],
            epochs=epochs,
            steps_per_epoch=steps_per_epoch,
            pct_start=min(max(rise, 0.01), 0.99),
        )
    return LambdaLR(optimizer, lambda step: lr_multiplier(cfg, step, steps_per_epoch, epochs))
