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
and RMSprop are switched to `capturable` (their step counters move to the GPU). Off a GPU, and for
a batch of another shape than the captured one, the same step runs eagerly.
"""

from __future__ import annotations

import functools
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
        self.stream: torch.cuda.Stream | None = None  # warm-up and capture share one stream

    def __call__(self, images: torch.Tensor, targets: torch.Tensor):
        if self.graph is None and images.is_cuda and self.eager_steps >= self.warmup:
            self._capture(images, targets)
        if self.graph is not None and images.shape == self.inputs[0].shape:
            self.inputs[0].copy_(images)
            self.inputs[1].copy_(targets)
            self.graph.replay()
            return self.outputs
        self.eager_steps += 1
        if not images.is_cuda:
            return self.step(images, targets)
        return self._on_side_stream(images, targets)

    def _on_side_stream(self, images: torch.Tensor, targets: torch.Tensor):
        """A warm-up step on the stream capture will use, so that the lazy set-up it triggers
        (cuBLAS workspaces, the autograd engine's streams) is done for that stream before
        capture, where it may not run; then waited for: a few waits per run."""
        self.stream = self.stream or torch.cuda.Stream()
        self.stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(self.stream):
            outputs = self.step(images, targets)
        torch.cuda.synchronize()
        return outputs

    def _capture(self, images: torch.Tensor, targets: torch.Tensor) -> None:
        """Record one step on static copies of this batch; recording runs no kernel, so the
        caller replays the graph for this batch right after."""
        set_capturable(self.optimizer, True)
        self.inputs = (images.clone(), targets.clone())
        graph = torch.cuda.CUDAGraph()
        # thread_local: Ray's own threads in this process may make CUDA calls meanwhile.
        with torch.cuda.graph(graph, stream=self.stream, capture_error_mode="thread_local"):
            # The step's zero_grad(set_to_none=True) leaves no gradient for backward to add to,
            # so every replay writes fresh gradients into the graph's own memory.
            self.outputs = self.step(*self.inputs)
        self.graph = graph


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
