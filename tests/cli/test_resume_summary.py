"""A resumed run's summary (issue 26 item 6): the training time before the stop is part of the total, and the
wall time of the resumption is said as such, not as a part of the total that is larger than it."""

from __future__ import annotations

import re
import signal

import pytest
import torch

from tiny_diffusion import runs
from tiny_diffusion.cli import main
from tiny_diffusion.config import TrainConfig
from tiny_diffusion.errors import TrainingStopped
from tiny_diffusion.train import train
from tests.helpers import TINY_POINTS, stop_at_frame


def test_the_resumed_summary_splits_the_time_before_and_after_the_stop(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    stop_at_frame(monkeypatch, 3, lambda: signal.raise_signal(signal.SIGINT))
    with pytest.raises(TrainingStopped):
        train(TrainConfig.from_dict(TINY_POINTS), out, progress=False)
    monkeypatch.undo()
    saved = torch.load(out / runs.CHECKPOINT, weights_only=True)["seconds"]  # the training time before the stop
    capsys.readouterr()
    assert main(["train", "--resume", str(out), "--quiet"]) == 0
    said = capsys.readouterr().out
    m = re.search(r"trained 8 epochs in ([\d.]+) s, ([\d.]+) s of it before the resumption; this resumption took "
                  r"([\d.]+) s with sampling and figures", said)
    assert m, said
    total, before, _ = map(float, m.groups())
    assert before == round(saved, 1) and saved > 0 and before <= total  # (a fast machine: 0.0 s before)
    assert "s with sampling and figures)" not in said  # the fresh run's wording, where the part exceeded the whole
