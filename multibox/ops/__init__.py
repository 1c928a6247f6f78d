"""The MultiBox operators of MXNet's SSD, as batched, device-agnostic torch functions.

Names and argument names follow ``mx.nd.contrib.MultiBox*`` so users of the original read them at a glance.
"""

from multibox.ops.prior import multibox_prior

__all__ = ["multibox_prior"]
