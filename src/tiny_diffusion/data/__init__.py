"""Point-cloud data sets: the classic four, the Datasaurus Dozen, standard toys and user files."""

from .files import read_points
from .points import DATASETS, DATASAURUS_SHAPES, dataset_names, load_dataset

__all__ = ["DATASETS", "DATASAURUS_SHAPES", "dataset_names", "load_dataset", "read_points"]
