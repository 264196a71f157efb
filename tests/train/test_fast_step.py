"""The one-GPU paths, exercised where the CPU can: the step the loop calls is the plain eager loop bit for bit;
the CUDA-graph plumbing (static inputs refilled each replay, the LR tensor, the EMA on tensors) run through
a stand-in for the graph; which flags resolve to what, and the one-line errors; bf16 autocast and
torch.compile on the CPU. What needs a real GPU is skipped here with the reason."""

from __future__ import annotations

import json
import math

import pytest
import torch

from tiny_diffusion import runs
from tiny_diffusion.cli import main
from tiny_diffusion.config import TrainConfig
from tiny_diffusion.data.source import load_source
from tiny_diffusion.core.diffusion import Diffusion
from tiny_diffusion.errors import InputError
from tiny_diffusion.models import build_model
from tiny_diffusion.train import length, loop, setup, train
from tiny_diffusion.runtime import graphs
from tiny_diffusion.train.step import Plan, ema_update, plan_for

TINY = dict(dataset="moons", n_points=512, batch_size=128, epochs=3, timesteps=20, terminal_alpha_bar=1e-4,
            hidden_size=16, hidden_layers=1,
            emb_size=8, frames=0, frame_points=64, device="cpu")
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none visible to torch here)")


def tiny(**changes) -> TrainConfig:
    return TrainConfig.from_dict({**TINY, **changes})


def _weights(model) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def plain_loop(cfg: TrainConfig):
    """The training loop as it was before steps, ranks and graphs: the reference the CPU path must equal."""
    data = load_source(cfg, "cpu")
    torch.manual_seed(cfg.seed)
    model = build_model(cfg, data.shape)
    ema = [p.detach().clone() for p in model.parameters()]
    diffusion = Diffusion.from_config(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    batch, per_epoch, total = length.schedule_length(cfg, len(data))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: loop.lr_factor(s, total, cfg.warmup, cfg.lr_decay))
    gen = torch.Generator().manual_seed(cfg.seed)
    step = 0
    for _ in range(cfg.epochs):
        perm = torch.randperm(len(data), generator=gen)
        for i in range(per_epoch):
            x0 = data.batch(perm[i * batch:(i + 1) * batch], gen)
            loss = diffusion.loss(model, x0, gen, kind=cfg.loss)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            sched.step()
            step += 1
            torch._foreach_lerp_(ema, list(model.parameters()), 1 - min(cfg.ema, (1 + step) / (10 + step)))
    return _weights(model), ema


def test_the_cpu_step_is_the_plain_eager_loop_bit_for_bit(tmp_path):
    cfg = tiny()
    train(cfg, tmp_path / "run", progress=False)
    state = torch.load(tmp_path / "run" / runs.CHECKPOINT, weights_only=True)
    weights, ema = plain_loop(cfg)
    assert all(torch.equal(a, b) for a, b in zip(state["model"].values(), weights))
    assert all(torch.equal(a, b) for a, b in zip(state["ema"].values(), ema))
    assert not all(torch.equal(a, b) for a, b in zip(weights, ema))  # the EMA is not the raw weights


class Replay:
    """A CPU stand-in for a CUDA graph: capture keeps the function, each replay calls it again, so it reads
    only what the static inputs hold at that moment (as a replayed graph does)."""

    def __init__(self):
        self.warmed = self.captured = self.replays = 0

    def warm(self, fn):
        self.warmed += 1
        return fn()

    def capture(self, fn):
        self.captured += 1

        def replay():
            self.replays += 1
            fn()
        return replay


def _cpu_graph_safe(optimizer, device):
    """make_graph_safe's CPU counterpart: the LR as a tensor the scheduler fills (single-tensor AdamW takes it)."""
    for group in optimizer.param_groups:
        group["lr"], group["foreach"] = torch.tensor(float(group["lr"])), False


def pretend_graphs(monkeypatch, backend) -> None:
    """The loop's graph path on the CPU: a plan with graphs, `backend(generator)` for CUDA graphs."""
    monkeypatch.setattr(setup, "plan_for", lambda *a: Plan(graphs=True, bf16=False, compile=False, channels_last=False))
    monkeypatch.setattr(setup, "CudaGraphBackend", backend)
    monkeypatch.setattr(setup, "make_graph_safe", _cpu_graph_safe)


class FailingCapture(Replay):
    def capture(self, fn):
        raise RuntimeError("CUDA error: operation not permitted when stream is capturing\nmore detail")


class OtherNoise(Replay):
    """A graph whose replays draw other random numbers than the eager step would (the generator reseeded)."""

    def __init__(self, generator):
        super().__init__()
        self.generator = generator

    def capture(self, fn):
        def replay():
            self.replays += 1
            self.generator.manual_seed(12345)
            fn()
        return replay


@pytest.mark.parametrize("backend, why", [(lambda generator: FailingCapture(), "the capture failed (RuntimeError: "
                                           "CUDA error: operation not permitted when stream is capturing)"),
                                          (OtherNoise, "one replayed step differs from the eager step")])
def test_auto_graphs_fall_back_to_exactly_the_eager_run(backend, why, tmp_path, monkeypatch):
    """--cuda-graphs auto checks the capture on one step: a capture that raises or a replay that differs leaves
    the run eager, bit for bit the run that never tried a graph, with one line saying why."""
    cfg = tiny(epochs=4)
    train(cfg, tmp_path / "eager", progress=False)
    pretend_graphs(monkeypatch, backend)
    said = []
    train(cfg, tmp_path / "auto", progress=False, log=said.append)
    said = [line for line in said if line.startswith("--cuda-graphs")]  # beside the run's length and sampling lines
    assert len(said) == 1 and said[0].startswith(f"--cuda-graphs auto: {why}") and "training eagerly" in said[0]
    eager, auto = (torch.load(tmp_path / r / runs.CHECKPOINT, weights_only=True) for r in ("eager", "auto"))
    for part in ("model", "ema"):
        assert all(torch.equal(a, b) for a, b in zip(eager[part].values(), auto[part].values()))
    assert json.loads((tmp_path / "auto" / runs.QUALITY).read_text())["cuda_graphs"] is False


def test_auto_graphs_keep_a_replay_that_matches(monkeypatch):
    cfg = tiny(epochs=4)
    eager = train(cfg, progress=False)
    backend, said = Replay(), []
    pretend_graphs(monkeypatch, lambda generator: backend)
    graphed = train(cfg, progress=False, log=said.append)
    said = [line for line in said if line.startswith("--cuda-graphs")]  # beside the run's length and sampling lines
    steps = cfg.epochs * (cfg.n_points // cfg.batch_size)
    # the trial: WARMUP_STEPS eager steps, one graph-safe warm step, one capture whose first replay is a real step
    warm = graphs.WARMUP_STEPS
    assert (backend.warmed, backend.captured, backend.replays) == (warm + 1, 1, steps - warm)
    assert said == []
    for a, b in zip(_weights(eager.model), _weights(graphed.model)):
        assert torch.allclose(a, b, atol=1e-6), (a - b).abs().max()


class Drifting(Replay):
    """A sampling graph whose replays compute with other weights than the live ones."""

    def __init__(self, weight):
        super().__init__()
        self.weight = weight

    def capture(self, fn):
        self.captured += 1

        def replay():
            with torch.no_grad():
                self.weight.add_(0.5)
                fn()
                self.weight.sub_(0.5)
        return replay


@pytest.mark.parametrize("broken", ["capture", "replay", None])
def test_auto_sampling_graph_falls_back_or_keeps_a_matching_replay(broken):
    torch.manual_seed(0)
    model = build_model(tiny(), (2,)).eval()
    backend = {"capture": FailingCapture(), "replay": Drifting(next(model.parameters())), None: Replay()}[broken]
    said = []
    net = graphs.GraphedNet(model, check=True, log=said.append, backend=backend)
    x, t = torch.randn(64, 2), torch.tensor(7)
    for _ in range(3):
        assert torch.equal(net(x, t), model(x, t))
    assert backend.captured == (broken != "capture")  # one attempt, never retried
    if broken is None:
        assert said == [] and backend.replays == 1 + 3 and not net.eager  # the check's replay, then every call
    else:
        assert len(said) == 1 and said[0].startswith("--cuda-graphs auto: sampling: ") and net.eager
        assert ("capture failed" if broken == "capture" else "differs from the eager one") in said[0]


def test_the_graph_path_replays_the_eager_step(monkeypatch):
    """Through the graph wrapper (static idx, step number, EMA decay and LR tensors) the run equals the eager one
    up to the EMA's rounding (mul + add instead of lerp on the captured path). --cuda-graphs on: no check."""
    cfg = tiny(epochs=4)
    eager = train(cfg, progress=False)
    backend = Replay()
    pretend_graphs(monkeypatch, lambda generator: backend)
    graphed = train(cfg.replace(cuda_graphs="on"), progress=False)
    steps = cfg.epochs * (cfg.n_points // cfg.batch_size)
    assert (backend.warmed, backend.captured, backend.replays) == (graphs.WARMUP_STEPS, 1, steps - graphs.WARMUP_STEPS)
    for a, b in zip(_weights(eager.model), _weights(graphed.model)):
        assert torch.allclose(a, b, atol=1e-6), (a - b).abs().max()


def test_a_replaced_lr_tensor_is_refused():
    p = torch.nn.Parameter(torch.ones(2))
    opt = torch.optim.AdamW([p], lr=0.1)
    _cpu_graph_safe(opt, "cpu")
    step = graphs.GraphedStep(type("S", (), {"loss_sum": torch.zeros(())})(), 4, opt, Replay())
    opt.param_groups[0]["lr"] = torch.tensor(0.1)
    with pytest.raises(RuntimeError, match="learning-rate tensor"):
        step(torch.arange(4), 1, 0.5)


def _gray_folder(root, n: int = 8):
    """n 8x8 grayscale PNGs (a bar on the left or right), no class folders: no metric classifier to train."""
    from PIL import Image
    import numpy as np

    root.mkdir()
    for i in range(n):
        img = np.random.default_rng(i).integers(0, 40, (8, 8))
        img[:, [1, 2] if i % 2 else [5, 6]] = 230
        Image.fromarray(img.astype(np.uint8), mode="L").save(root / f"{i}.png")
    return root


def test_the_ema_model_of_a_batchnorm_network_has_the_trained_statistics(tmp_path, monkeypatch):
    """BatchNorm's running statistics are buffers, not parameters: the EMA copy must carry the trained ones,
    or an EMA'd simple-unet samples with the statistics it was initialised with (mean 0, variance 1)."""
    from tiny_diffusion.models import MODELS
    from tiny_diffusion.models.simple_unet import SimpleUnet

    monkeypatch.setenv("TINY_DIFFUSION_DATA", str(tmp_path / "cache"))
    monkeypatch.setitem(MODELS, "simple-unet", lambda cfg, shape, label_dim: SimpleUnet(  # the tutorial's, but tiny
        img_channels=shape[0], img_resolution=shape[-1], channels=(4, 8), time_emb_dim=8))
    cfg = TrainConfig.from_dict(dict(dataset=str(_gray_folder(tmp_path / "imgs")), model="simple-unet", timesteps=20,
                                     batch_size=4, kimg=0.016, ema=0.999, frames=0, eval_n=4, eval_steps=2,
                                     device="cpu"))
    train(cfg, tmp_path / "run", progress=False)
    state = torch.load(tmp_path / "run" / runs.CHECKPOINT, weights_only=True)
    stats = [k for k in state["model"] if k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    assert stats and state["model"][stats[-1]].item() == 4  # 16 images seen in batches of 4: four updates
    for k in stats:
        assert torch.equal(state["ema"][k], state["model"][k]), k
    assert not torch.equal(state["model"][stats[0]], torch.zeros_like(state["model"][stats[0]]))  # they moved


def test_ema_on_tensors_matches_the_float_update():
    a, b = [torch.randn(5, 3), torch.randn(7)], [torch.randn(5, 3), torch.randn(7)]
    c = [t.clone() for t in a]
    ema_update(a, b, 0.9)
    ema_update(c, b, torch.tensor(0.9))
    assert all(torch.allclose(x, y, atol=1e-6) for x, y in zip(a, c))


def test_plans_resolve_auto_by_device_and_refuse_what_cannot_run():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")  # plan_for only reads the device's type
    assert plan_for(tiny(), cpu, 1, False) == Plan(False, False, False, False)
    assert plan_for(tiny(), cuda, 1, False).graphs
    assert plan_for(tiny(), cuda, 1, True) == Plan(True, True, False, True)  # images: bf16, channels-last
    assert not plan_for(tiny(), cuda, 2, True).graphs  # DDP runs eagerly
    assert not plan_for(tiny(skip_nonfinite=3), cuda, 1, False).graphs
    assert not plan_for(tiny(compile="on"), cuda, 1, False).graphs
    assert plan_for(tiny(compile="on", cuda_graphs="on"), cuda, 1, False).graphs
    assert not plan_for(tiny(cuda_graphs="off"), cuda, 1, False).graphs
    assert not plan_for(tiny(autocast="off"), cuda, 1, True).bf16
    for cfg, device, world, what in [(tiny(cuda_graphs="on"), cpu, 1, "need a CUDA GPU"),
                                     (tiny(cuda_graphs="on"), cuda, 2, "for one process"),
                                     (tiny(cuda_graphs="on", skip_nonfinite=1), cuda, 1, "skip-nonfinite"),
                                     (tiny(autocast="bf16"), torch.device("mps"), 1, "autocast bf16")]:
        with pytest.raises(InputError, match=what):
            plan_for(cfg, device, world, False)


def test_cuda_graphs_on_without_cuda_is_one_line_and_no_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "run"
    assert main(["train", "--device", "cpu", "--cuda-graphs", "on", "--epochs", "1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--cuda-graphs on: CUDA graphs need a CUDA GPU" in err
    assert not out.exists()


def test_run_folder_records_how_it_ran(tmp_path):
    train(tiny(), tmp_path / "run", progress=False)
    q = json.loads((tmp_path / "run" / runs.QUALITY).read_text())
    assert {k: q[k] for k in ("world_size", "device", "cuda_graphs", "autocast", "compile")} == \
        {"world_size": 1, "device": "cpu", "cuda_graphs": False, "autocast": "off", "compile": False}


def test_how_it_runs_may_change_on_resume_and_in_sweeps():
    from tiny_diffusion.train.state import RESUMABLE_CHANGES

    assert {"cuda_graphs", "autocast", "compile"} <= set(RESUMABLE_CHANGES)


def test_bf16_autocast_runs_on_the_cpu_and_changes_the_arithmetic():
    fp32, bf16 = train(tiny(), progress=False), train(tiny(autocast="bf16"), progress=False)
    diff = max((a - b).abs().max().item() for a, b in zip(_weights(fp32.model), _weights(bf16.model)))
    assert 0 < diff < 0.5 and all(torch.isfinite(p).all() for p in bf16.model.parameters())


@pytest.mark.slow
def test_compile_on_the_cpu_trains_the_same_model_and_reports_its_time(tmp_path):
    eager = train(tiny(), progress=False)
    compiled = train(tiny(compile="on"), tmp_path / "run", progress=False)
    for a, b in zip(_weights(eager.model), _weights(compiled.model)):
        assert torch.allclose(a, b, atol=1e-4)
    seconds = json.loads((tmp_path / "run" / runs.QUALITY).read_text())["compile_seconds"]
    assert math.isfinite(seconds) and seconds > 0


@CUDA
def test_cuda_graph_step_matches_eager_on_the_gpu():
    cfg = tiny(device="cuda", epochs=4)
    eager, graphed = train(cfg.replace(cuda_graphs="off"), progress=False), train(cfg.replace(cuda_graphs="on"), progress=False)
    # the graph draws its noise from the same generator by another route: same distribution, other numbers
    assert all(torch.isfinite(p).all() for p in graphed.model.parameters())
    assert abs(eager.quality.energy - graphed.quality.energy) < 0.5


@CUDA
def test_graphed_sampling_net_matches_the_model_on_the_gpu():
    from tiny_diffusion.sampling import sample

    result = train(tiny(device="cuda", cuda_graphs="off"), progress=False)
    model = result.model.eval()
    a = sample(model, result.diffusion, 300, 3, device="cuda", steps=10)
    b = sample(graphs.GraphedNet(model), result.diffusion, 300, 3, device="cuda", steps=10)
    assert torch.allclose(a, b, atol=1e-5)


@pytest.mark.slow
def test_the_gpu_bench_runs_its_smoke_sizes_here():
    """bench/gpu.py is run on a GPU by hand (docs); its --smoke sizes check every part on this machine."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]  # the repository: tests/train/ is two below it
    r = subprocess.run([sys.executable, str(root / "bench" / "gpu.py"), "--smoke", "--device", "cpu"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    for part in ("dino train", "default MLP step", "ancestral steps", "our loop", "plain loop", "classifier-FID"):
        assert part in r.stdout, part


def test_native_bf16_follows_the_cpu_flags_and_auto_keeps_cpu_training_in_float32(monkeypatch, tmp_path):
    """native_bf16 (the default of bf16 sampling on a CPU) reads AVX-512 BF16 or AMX from the CPU flags (an AVX2
    host emulates bf16, slower than float32); --autocast auto still trains in float32 on any CPU, where bf16
    training measured worse per image seen; an explicit choice wins."""
    from tiny_diffusion.runtime import host
    from tiny_diffusion.runtime.device import native_bf16

    cpu = torch.device("cpu")
    info = tmp_path / "cpuinfo"
    for flags, native in (("fpu avx2 avx512f avx512bw", False), ("fpu avx2 avx512f avx512_bf16", True),
                          ("fpu avx2 amx_bf16 amx_tile", True)):
        info.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
        monkeypatch.setattr(host, "CPUINFO", str(info))
        assert native_bf16(cpu) is native and native_bf16(torch.device("cuda")) is True, flags
        assert plan_for(tiny(), cpu, 1, True).bf16 is False
        assert plan_for(tiny(autocast="bf16"), cpu, 1, True).bf16 is True
    monkeypatch.setattr(host, "CPUINFO", str(tmp_path / "missing"))
    assert host.cpu_flags() == set() and native_bf16(cpu) is False
