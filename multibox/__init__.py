"""multibox: the Single Shot MultiBox Detector (SSD) for PyTorch.

``multibox.from_pretrained("torchvision:ssd300_vgg16")`` (or a checkpoint path) gives a trained SSD; the rest of
the library lives in its rooms (``multibox.model``, ``multibox.data``, ``multibox.engine``, ...,
docs/architecture.md). Importing ``multibox`` alone imports nothing heavy.
"""

from typing import Any

from multibox.version import __version__

__all__ = ["__version__", "from_pretrained"]


def __getattr__(name: str) -> Any:
    if name == "from_pretrained":
        from multibox.inference.pretrained import from_pretrained

        return from_pretrained
    raise AttributeError(f"module 'multibox' has no attribute {name!r}")
