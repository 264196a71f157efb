"""runtime/host.py: the host line every bench log and the study report carry (bench/claims.py checks it)."""

import pytest

from tiny_diffusion.runtime.host import avx512, cpu_model, log_header

CPUINFO = """processor\t: 0
model name\t: AMD EPYC 9654 96-Core Processor
flags\t\t: fpu sse2 avx2 avx512f avx512bw avx512_bf16
"""


def test_the_model_name_and_avx512_come_from_cpuinfo():
    assert cpu_model(CPUINFO) == "AMD EPYC 9654 96-Core Processor"
    assert avx512(CPUINFO) == "yes (avx512_bf16)"
    assert avx512(CPUINFO.replace(" avx512_bf16", "")) == "yes"
    assert avx512(CPUINFO.replace(" avx512f avx512bw avx512_bf16", "")) == "no"  # an AVX2 host


def test_without_cpuinfo_the_platform_names_the_machine():
    assert cpu_model("") != "" and avx512("") == "no"


def test_a_log_starts_with_its_command_then_the_host():
    command, host = log_header(["bench/x.py", "--repeats", "3"]).splitlines()
    assert command == "command: python bench/x.py --repeats 3"
    assert host.startswith("host: ") and " cores, AVX-512 " in host


@pytest.mark.slow
def test_the_step_speed_bench_times_bf16_only_where_the_cpu_has_it(tmp_path, monkeypatch, capsys):
    """bench/image_step_speed.py --smoke: the step's GFLOP/s beside the matmul peak in fp32 always, in bf16 only
    where the CPU flags list native bf16 (elsewhere one line says why; emulated bf16 took minutes)."""
    import runpy
    import sys
    from pathlib import Path

    from tiny_diffusion.runtime import host

    script = Path(__file__).resolve().parents[2] / "bench" / "image_step_speed.py"
    info = tmp_path / "cpuinfo"
    for flags, bf16 in (("fpu avx2", False), ("fpu avx2 avx512f avx512_bf16", True)):
        info.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
        monkeypatch.setattr(host, "CPUINFO", str(info))
        monkeypatch.setattr(sys, "argv", [str(script), "--smoke", "--threads", "1"])
        runpy.run_path(str(script), run_name="__main__")
        out = capsys.readouterr().out
        assert "fp32: step " in out and "matmul 64 peak" in out and "GFLOP per image" in out
        assert ("bf16: step " in out and "train bf16 batch 4" in out) == bf16
        assert ("bf16: skipped" in out) != bf16
