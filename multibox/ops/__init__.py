"""The MultiBox operators of MXNet's SSD, as batched, device-agnostic torch functions.

Names and argument names follow ``mx.nd.contrib.MultiBox*`` so users of the original read them at a glance.
"""

from multibox.ops.boxes import box_area, box_iou, decode_boxes, encode_boxes
from multibox.ops.detection import multibox_detection
from multibox.ops.loss import multibox_loss, smooth_l1
from multibox.ops.nms import greedy_nms
from multibox.ops.prior import default_boxes, multibox_prior
from multibox.ops.target import multibox_target

__all__ = [
    "box_area",
    "box_iou",
    "decode_boxes",
    "default_boxes",
    "encode_boxes",
    "greedy_nms",
    "multibox_detection",
    "multibox_loss",
    "multibox_prior",
    "multibox_target",
    "smooth_l1",
]
