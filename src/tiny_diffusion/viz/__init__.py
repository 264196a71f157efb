"""Figures and files for image data: sample grids, step strips, PNG folders for FID tools and animations
(viz.images; Pillow and numpy only). The 2D point-cloud figures live in tiny_diffusion.plots."""
