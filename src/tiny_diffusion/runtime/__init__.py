"""Where the work runs: torchrun's process group and collectives (dist.py) and CUDA graphs (graphs.py)."""
