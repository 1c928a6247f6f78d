"""Datasets (VOC, COCO, YOLO, .lst, synthetic shapes), checks, the SSD augmentation recipe and the loader."""

from multibox.data.augment import TrainAugmentation, ValTransform
from multibox.data.formats import load_dataset, make_shapes, save_dataset
from multibox.data.image_io import ImageDecodeError, open_image, read_rgb, to_rgb
from multibox.data.loader import make_loader
from multibox.data.records import DetectionDataset, DetectionRecord
from multibox.data.validate import check_dataset, clean_for_training, require_images

__all__ = [
    "DetectionDataset",
    "DetectionRecord",
    "ImageDecodeError",
    "TrainAugmentation",
    "ValTransform",
    "check_dataset",
    "clean_for_training",
    "load_dataset",
    "make_loader",
    "make_shapes",
    "open_image",
    "read_rgb",
    "require_images",
    "save_dataset",
    "to_rgb",
]
