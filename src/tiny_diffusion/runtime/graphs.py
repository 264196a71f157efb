"""CUDA graphs: the whole training step, and the sampler's network call, captured once and replayed.

Small models on a big GPU are bound by kernel launches: a replayed graph launches the step's few hundred
kernels with one call. What is captured is the very TrainStep the eager loop calls (train/step.py); its
changing inputs live in static tensors refilled before each replay, the learning rate in a tensor the LR
scheduler fills, the optimizer in its capturable form, and the training generator is registered with
the graph so every replay draws fresh noise. Nothing here runs on the CPU except through the `backend`
a test passes (tests/test_dist.py checks the static-buffer plumbing against the eager loop there).
"""

from __future__ import annotations

import warnings

import torch

WARMUP_STEPS = 3  # eager steps (real ones) before capture: optimizer state and autograd buffers exist by then


class CudaGraphBackend:
    """Eager warm-up on a side stream, then capture on the current device (as PyTorch's docs do it)."""

    def __init__(self, generator: torch.Generator | None = None):
        self.generator = generator

    def warm(self, fn):
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            out = fn()
        torch.cuda.current_stream().wait_stream(side)
        return out

    def capture(self, fn):
        graph = torch.cuda.CUDAGraph()
        if self.generator is not None and hasattr(graph, "register_generator_state"):
            with warnings.catch_warnings():  # newer torch registers generators lazily and deprecates this
                warnings.simplefilter("ignore")
                graph.register_generator_state(self.generator)
        with torch.cuda.graph(graph):
            fn()
        return graph.replay


def make_graph_safe(optimizer: torch.optim.Optimizer, device: torch.device) -> None:
    """The optimizer in the form a graph can replay: capturable (its step counts on the device) and its
    learning rate a device tensor, which the LR scheduler then fills in place each step (torch >= 2.4)."""
    for group in optimizer.param_groups:
        group["capturable"] = True
        group["lr"] = torch.tensor(float(group["lr"]), device=device)
    for state in optimizer.state.values():
        if "step" in state:
            state["step"] = state["step"].to(device=device, dtype=torch.float32)


class GraphedStep:
    """The same step(idx, step_no, decay), run eagerly for WARMUP_STEPS steps and then replayed from one
    capture. Returns what the step returns (always False: no --skip-nonfinite with graphs)."""

    def __init__(self, step, batch: int, optimizer: torch.optim.Optimizer, backend):
        device = step.loss_sum.device
        self.step, self.optimizer, self.backend = step, optimizer, backend
        self.idx = torch.zeros(batch, dtype=torch.long, device=device)
        self.step_no = torch.zeros((), dtype=torch.long, device=device)
        self.decay = torch.zeros((), device=device)
        self.lr = optimizer.param_groups[0]["lr"]
        self.replay = None
        self.warm_steps = 0

    def __call__(self, idx: torch.Tensor, step_no: int, decay: float) -> bool:
        if self.optimizer.param_groups[0]["lr"] is not self.lr:
            raise RuntimeError("the LR scheduler replaced the learning-rate tensor a captured step reads")
        if self.replay is None and self.warm_steps < WARMUP_STEPS:
            self.warm_steps += 1
            return self.backend.warm(lambda: self.step(idx, step_no, decay))
        self.idx.copy_(idx)
        self.step_no.fill_(step_no)
        self.decay.fill_(decay)
        if self.replay is None:  # capturing runs nothing: the first replay below is this step
            self.replay = self.backend.capture(lambda: self.step(self.idx, self.step_no, self.decay))
        self.replay()
        return False


class GraphedNet(torch.nn.Module):
    """model(x, t) for sampling, replayed from one CUDA graph per input shape (a sampler's blocks have one or
    two); the weights are read in place, so an EMA model updated between snapshots needs no new capture."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model
        self.sample_shape = getattr(model, "sample_shape", None)
        self.graphs = {}

    def forward(self, x: torch.Tensor, t: torch.Tensor, *rest) -> torch.Tensor:
        if rest or not x.is_cuda:
            return self.model(x, t, *rest)
        key = (tuple(x.shape), tuple(t.shape), x.dtype)
        if key not in self.graphs:
            static_x, static_t = x.clone(), t.clone()
            backend = CudaGraphBackend()
            backend.warm(lambda: self.model(static_x, static_t))
            out = []
            replay = backend.capture(lambda: out.append(self.model(static_x, static_t)))
            self.graphs[key] = (replay, static_x, static_t, out[0])
        replay, static_x, static_t, out = self.graphs[key]
        static_x.copy_(x)
        static_t.copy_(t)
        replay()
        return out.clone()


def for_sampling(model: torch.nn.Module, device: torch.device, setting: str) -> torch.nn.Module:
    """The network a sampler should call: graph-replayed on CUDA unless `setting` (cuda_graphs) is off."""
    return GraphedNet(model) if device.type == "cuda" and setting != "off" else model
