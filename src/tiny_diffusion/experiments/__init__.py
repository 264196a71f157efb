"""Many runs at once: grids of runs in worker processes (sweep.py) and the ablation study (study.py runs it;
ablations.py is its plan, study_report.py its Markdown report)."""
