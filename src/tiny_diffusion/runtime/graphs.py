"""CUDA graphs: the whole training step, and the sampler's network call, captured once and replayed.

Small models on a big GPU are bound by kernel launches: a replayed graph launches the step's few hundred
kernels with one call. What is captured is the very TrainStep the eager loop calls (train/step.py); its
changing inputs live in static tensors refilled before each replay, the learning rate in a tensor the LR
scheduler fills, the optimizer in its capturable form, and the training generator is registered with
the graph so every replay draws fresh noise. Nothing here runs on the CPU except through the `backend`
a test passes (tests/train/test_fast_step.py checks the static-buffer plumbing against the eager loop there).

No GPU has checked these paths yet, so --cuda-graphs auto trusts a capture only after it has been compared:
one replayed training step against the eager step from the same state, one replayed network call against
the eager call; a capture that raises or a replay that differs falls back to eager with one printed line.
"""

from __future__ import annotations

import copy
import sys
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


GRAPH_RTOL = 1e-2  # a replay matches when it is this close to eager: float rounding (the capturable AdamW, the
# EMA's mul + add) is far below it, other random numbers or stale inputs move the weights by the whole step


def relative_gap(got, expected, start=None) -> float:
    """||got - expected|| / ||expected - start|| over lists of tensors (start None: / ||expected||), in float64;
    nan or inf for non-finite values, 0 when both norms are 0."""
    def norm(a, b=None) -> float:
        return sum(float(((x.detach().double() - (0 if b is None else y.detach().double())) ** 2).sum())
                   for x, y in zip(a, a if b is None else b)) ** 0.5

    gap, scale = norm(got, expected), norm(expected, start) if start is not None else norm(expected)
    return 0.0 if gap == scale == 0 else gap / scale if scale > 0 else float("inf")


def _first_line(e: Exception) -> str:
    return f"{type(e).__name__}: {(str(e).splitlines() or [''])[0][:120]}"


class GraphedStep:
    """The same step(idx, step_no, decay), run eagerly for WARMUP_STEPS steps and then replayed from one
    capture. Returns what the step returns (always False: no --skip-nonfinite with graphs).

    check=False (--cuda-graphs on): the optimizer is made graph-safe (`make_safe`) from the first step and the
    capture is trusted. check=True (auto): the steps before the capture are the plain eager ones, and the
    graph is kept only when one replayed step matches the eager step from the same state (`_trial`); else
    the run goes on eagerly, exactly as if no graph had been tried, and `log` says why in one line."""

    def __init__(self, step, batch: int, optimizer: torch.optim.Optimizer, backend, make_safe=None,
                 check: bool = False, log=None):
        device = step.loss_sum.device
        self.step, self.optimizer, self.backend, self.check = step, optimizer, backend, check
        self.make_safe = make_safe or (lambda: make_graph_safe(optimizer, device))
        self.log = log or (lambda msg: print(msg, file=sys.stderr))
        self.idx = torch.zeros(batch, dtype=torch.long, device=device)
        self.step_no = torch.zeros((), dtype=torch.long, device=device)
        self.decay = torch.zeros((), device=device)
        self.lr = None  # the learning-rate tensor the capture reads, once graph-safe
        self.replay = None
        self.warm_steps = 0
        self.eager = False  # after a failed check: every later step runs eagerly
        if not check:
            self._make_safe()

    @property
    def graphed(self) -> bool:
        """Whether the steps are being replayed from a graph (False before the capture and after a fallback)."""
        return self.replay is not None

    def _make_safe(self) -> None:
        self.make_safe()
        self.lr = self.optimizer.param_groups[0]["lr"]

    def _captured(self) -> None:
        self.step(self.idx, self.step_no, self.decay)

    def __call__(self, idx: torch.Tensor, step_no: int, decay: float) -> bool:
        if self.eager:
            return self.step(idx, step_no, decay)
        if self.lr is not None and self.optimizer.param_groups[0]["lr"] is not self.lr:
            raise RuntimeError("the LR scheduler replaced the learning-rate tensor a captured step reads")
        if self.replay is None and self.warm_steps < WARMUP_STEPS:
            self.warm_steps += 1
            return self.backend.warm(lambda: self.step(idx, step_no, decay))
        self.idx.copy_(idx)
        self.step_no.fill_(step_no)
        self.decay.fill_(decay)
        if self.replay is None and self.check:
            return self._trial(idx, step_no, decay)
        if self.replay is None:  # capturing runs nothing: the first replay below is this step
            self.replay = self.backend.capture(self._captured)
        self.replay()
        return False

    def _trial(self, idx: torch.Tensor, step_no: int, decay: float) -> bool:
        """This step eagerly (the eager training's own step), then again from the same state (weights, AdamW,
        EMA, generator) through a fresh capture and one replay. A replay within GRAPH_RTOL of the eager
        step's change is kept; a capture that raises or a replay that differs leaves the eager result."""
        before = self._snapshot()
        self.step(idx, step_no, decay)
        eager = self._snapshot()
        try:
            self._restore(before)
            self._make_safe()
            self.backend.warm(self._captured)  # the graph-safe step once, outside the capture (as PyTorch's docs)
            self._restore(before)
            self._make_safe()
            self.replay = self.backend.capture(self._captured)
            self.replay()
            n = len(self.step.params)  # the weights lead _live's list
            gap = relative_gap(self.step.params, eager[0][:n], before[0][:n])
            why = None if gap <= GRAPH_RTOL else \
                f"one replayed step differs from the eager step ({gap:.1e} of the step's change)"
        except Exception as e:  # noqa: BLE001 - a graph that cannot be captured here is a reason to run eagerly
            why = f"the capture failed ({_first_line(e)})"
        if why is not None:
            self.replay, self.lr, self.eager = None, None, True
            self._restore(eager)
            self.log(f"--cuda-graphs auto: {why}; training eagerly (--cuda-graphs off skips this check)")
        return False

    def _live(self) -> list[torch.Tensor]:
        """The tensors a step changes in place, the weights first: weights, EMA, buffers, running sums."""
        s = self.step
        return [*s.params, *(s.ema_params or []), *s.buffers, *(s.ema_buffers or []), s.loss_sum, s.first_bad]

    def _snapshot(self):
        """Copies of everything a step changes: _live's tensors, AdamW's state, the generator's state."""
        return ([t.detach().clone() for t in self._live()], copy.deepcopy(self.optimizer.state_dict()),
                self.step.generator.get_state())

    def _restore(self, snapshot) -> None:
        """Back to `snapshot` in place (the tensors a capture reads stay the same objects); AdamW in its saved,
        plain form (graph-safe again only through _make_safe)."""
        tensors, optimizer_state, generator_state = snapshot
        with torch.no_grad():
            for t, saved in zip(self._live(), tensors):
                t.copy_(saved)
        self.optimizer.load_state_dict(copy.deepcopy(optimizer_state))
        self.step.generator.set_state(generator_state)


class GraphedNet(torch.nn.Module):
    """model(x, t) for sampling, replayed from one CUDA graph per input shape (a sampler's blocks have one or
    two); the weights are read in place, so an EMA model updated between snapshots needs no new capture.
    check=True (--cuda-graphs auto): each capture's first replay is compared with the eager call on the same
    input, and a capture that raises or a replay that differs makes every later call eager (one `log` line).
    backend: a stand-in for CudaGraphBackend (tests), used on any device."""

    def __init__(self, model: torch.nn.Module, check: bool = False, log=None, backend=None):
        super().__init__()
        self.model, self.check = model, check
        self.log = log or (lambda msg: print(msg, file=sys.stderr))
        self.backend, self.any_device = backend or CudaGraphBackend(), backend is not None
        self.sample_shape = getattr(model, "sample_shape", None)
        self.kind, self.grid = getattr(model, "kind", None), getattr(model, "grid", None)  # what samplers read
        self.graphs = {}
        self.eager = False  # after a failed check

    def forward(self, x: torch.Tensor, t: torch.Tensor, *rest) -> torch.Tensor:
        if rest or self.eager or not (x.is_cuda or self.any_device):
            return self.model(x, t, *rest)
        key = (tuple(x.shape), tuple(t.shape), x.dtype)
        if key not in self.graphs:
            graph = self._capture(x, t)
            if graph is None:
                return self.model(x, t)
            self.graphs[key] = graph
        replay, static_x, static_t, out = self.graphs[key]
        static_x.copy_(x)
        static_t.copy_(t)
        replay()
        return out[0].clone()

    def _capture(self, x: torch.Tensor, t: torch.Tensor):
        """(replay, static x, static t, [output]) for inputs like x, t; None after a failed check."""
        static_x, static_t, out = x.clone(), t.clone(), [None]

        def call():
            out[0] = self.model(static_x, static_t)  # a graph's output is the capture's tensor, refilled by replays
        if not self.check:
            self.backend.warm(call)
            return self.backend.capture(call), static_x, static_t, out
        try:
            self.backend.warm(call)
            replay = self.backend.capture(call)
            replay()
            gap = relative_gap([out[0]], [self.model(x, t)])
            why = None if gap <= GRAPH_RTOL else f"a replayed network call differs from the eager one (by {gap:.1e})"
        except Exception as e:  # noqa: BLE001 - as GraphedStep._trial
            why = f"the capture failed ({_first_line(e)})"
        if why is None:
            return replay, static_x, static_t, out
        self.eager, self.graphs = True, {}
        self.log(f"--cuda-graphs auto: sampling: {why}; sampling eagerly (--cuda-graphs off skips this check)")
        return None


def for_sampling(model: torch.nn.Module, device: torch.device, setting: str, log=None) -> torch.nn.Module:
    """The network a sampler should call: graph-replayed on CUDA unless `setting` (cuda_graphs) is off; auto
    keeps a graph only once its replay has matched the eager call (GraphedNet's check)."""
    if device.type != "cuda" or setting == "off":
        return model
    return GraphedNet(model, check=setting == "auto", log=log)
