"""The diffusion core, torch and numpy only: noise schedules (schedules.py), the math page (diffusion.py),
per-sample seeded noise (noise.py), the samplers (samplers.py), class labels and classifier-free guidance
(guidance.py) and the exact denoiser of a Gaussian mixture (exact.py)."""
