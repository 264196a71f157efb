"""runtime/host.py: the host line every bench log and the study report carry (bench/claims.py checks it)."""

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
