"""Every figure: matplotlib figures of points (points.py); image grids, step strips, PNG folders for FID tools
and animations (images.py; Pillow and numpy only); the forward/reverse figures of a run (figures.py)."""
