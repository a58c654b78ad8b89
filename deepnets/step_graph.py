"""A whole training step (forward, loss, backward, optimizer step) replayed as one CUDA graph.

At the report's batch of 64 a GPU step is bound by Python launching its few hundred kernels,
not by the GPU running them. A CUDA graph launches them all with one call. torch.compile offers
that too ("reduce-overhead", "cudagraphs"), but traces and compiles every graph first (17-22 s
each on an H200 with Inductor) and leaves the optimizer step outside. Here nothing is traced:
after a few eager warm-up steps (which create the optimizer's state and let cuDNN choose its
algorithms) the step is captured once and every later batch of the same shape replays it.

What capture needs, and `TrainConfig` checks before any run starts: one worker (DDP's
all-reduce is not captured), a constant learning rate (the captured optimizer step keeps the lr
it was captured with) and no fp16 (GradScaler reads its inf check back every step). Adam, AdamW
and RMSprop are switched to `capturable` (their step counters move to the GPU). Off a GPU, for a
batch of another shape than the captured one, and after a capture that failed (with one line on
stderr saying why), the same step runs eagerly.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable

import torch

Step = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
WARMUP_STEPS = 3  # as PyTorch's whole-network capture example; DDP would need 11


class GraphedStep:
    """Call it as the step it wraps: (images, targets) -> (loss, main logits).

    The returned tensors are the graph's own outputs, overwritten by the next replay: use them
    (queue work on them) before the next call, as `engine.Tally.add` does."""

    def __init__(self, step: Step, optimizer: torch.optim.Optimizer, warmup: int = WARMUP_STEPS):
        self.step, self.optimizer, self.warmup = step, optimizer, warmup
        self.graph: torch.cuda.CUDAGraph | None = None
        self.inputs: tuple[torch.Tensor, torch.Tensor] = ()
        self.outputs: tuple[torch.Tensor, torch.Tensor] = ()
        self.eager_steps = 0
        self.warm_batch: tuple | None = None  # the shapes and types the warm-up steps saw
        self.failed = False  # capture raised: every step stays eager
        self.stream: torch.cuda.Stream | None = None  # warm-up and capture share one stream

    def __call__(self, images: torch.Tensor, targets: torch.Tensor):
        batch = batch_kind(images, targets)
        if self.graph is not None and batch == self.warm_batch:
            self.inputs[0].copy_(images)
            self.inputs[1].copy_(targets)
            self.graph.replay()
            return self.outputs
        if not images.is_cuda:
            self.eager_steps += 1
            return self.step(images, targets)
        if self._ready_to_capture(batch) and self._capture(images, targets):
            return self(images, targets)  # recording ran nothing: replay it for this batch
        self.eager_steps += 1
        self.warm_batch = batch if self.graph is None else self.warm_batch
        return self._on_side_stream(images, targets)

    def _ready_to_capture(self, batch: tuple) -> bool:
        """Enough warm-up steps, the last of them on a batch like this one (the last training
        batch of an epoch can be smaller: it is not the one to capture)."""
        warm = self.eager_steps >= self.warmup and batch == self.warm_batch
        return self.graph is None and not self.failed and warm

    def _on_side_stream(self, images: torch.Tensor, targets: torch.Tensor):
        """An eager step on the stream capture uses, so that the lazy set-up it triggers
        (cuBLAS workspaces, the autograd engine's streams) is done for that stream before
        capture, where it may not run; then waited for: a few waits per run."""
        self.stream = self.stream or torch.cuda.Stream(images.device)
        self.stream.wait_stream(torch.cuda.current_stream(images.device))
        with torch.cuda.stream(self.stream):
            outputs = self.step(images, targets)
        torch.cuda.synchronize(images.device)
        return outputs

    def _capture(self, images: torch.Tensor, targets: torch.Tensor) -> bool:
        """Record one step on static copies of this batch. If recording fails (an operation
        that cannot be captured), say so once and train eagerly from then on."""
        set_capturable(self.optimizer, True)
        self.inputs = (images.clone(), targets.clone())
        graph = torch.cuda.CUDAGraph()
        try:
            # thread_local: Ray's own threads in this process may make CUDA calls meanwhile.
            with (
                torch.cuda.device(images.device),
                torch.cuda.graph(graph, stream=self.stream, capture_error_mode="thread_local"),
            ):
                # The step's zero_grad(set_to_none=True) leaves no gradient for backward to add
                # to, so every replay writes fresh gradients into the graph's own memory.
                self.outputs = self.step(*self.inputs)
        except RuntimeError as error:
            self.failed, self.inputs, self.outputs = True, (), ()
            set_capturable(self.optimizer, False)
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else "?"
            print(f"compile step_graph: capture failed, training eagerly: {first_line}",
                  file=sys.stderr, flush=True)  # fmt: skip
            return False
        self.graph = graph
        return True


def batch_kind(images: torch.Tensor, targets: torch.Tensor) -> tuple:
    """What a captured graph is specific to: the shapes, dtypes and devices of its inputs."""
    return tuple((t.shape, t.dtype, t.device) for t in (images, targets))


def set_capturable(optimizer: torch.optim.Optimizer, on: bool) -> None:
    """Switch optimizers that keep a step counter (Adam, AdamW, RMSprop) to their capturable
    form (counters on the parameters' device, as capture needs) or back (counters on the CPU,
    as their eager form wants). SGD has no counter and is left as it is."""
    for group in optimizer.param_groups:
        if "capturable" not in group:
            continue
        group["capturable"] = on
        for param in group["params"]:
            state = optimizer.state.get(param, {})
            if torch.is_tensor(state.get("step")):
                device = param.device if on else "cpu"
                state["step"] = state["step"].to(device, torch.float32)


def graphed_training_step(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer, **options
) -> GraphedStep:
    """`engine.training_step` on `model` and `optimizer` (with `options`: criterion, precision,
    ...), graphed; autocast keeps no weight copies between steps, as capture needs."""
    from deepnets.engine import training_step

    step = functools.partial(training_step, model, optimizer, autocast_cache=False, **options)
    return GraphedStep(step, optimizer)
