"""Every metric: point sets (points.py), likelihood (likelihood.py), quality vs steps (steps_curve.py) and vs
guidance (guidance_curve.py); for images a small classifier trained once per labelled data set (classifier.py)
and the numbers computed with it (images.py): classifier-FID in its features and logits, confidence, class
entropy and a memorisation check, each beside a floor (real images) and a noise baseline. Not comparable to
papers' FID. report.py scores a run's images."""
