"""Many runs at once: grids of runs in worker processes (sweep.py) and the ablation study with its report (study.py)."""
