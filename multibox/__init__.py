"""multibox: the Single Shot MultiBox Detector (SSD) for PyTorch."""

__version__ = "0.1.0"
