"""Image evaluation: a small classifier trained once per labelled data set (classifier.py) and the numbers
computed with it (images.py): classifier-FID in its features and logits, confidence, class entropy and a
memorisation check, each beside a floor (real images) and a noise baseline. Not comparable to papers' FID."""
