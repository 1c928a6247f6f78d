"""torch.hub entry points: ``torch.hub.load("path/to/multibox", "ssd300_vgg16", source="local")`` from a clone.

Each returns a multibox SSD in eval mode with ``model.class_names``; ``pretrained=True`` fetches torchvision's
COCO weights (through torchvision's weights API), ``pretrained=False`` gives the same network untrained.
"""

dependencies = ["torch", "torchvision", "numpy", "PIL"]


def _torchvision_ssd(arch: str, pretrained: bool):
    from multibox.inference.pretrained import from_pretrained, ready_model
    from multibox.model.import_torchvision import torchvision_checkpoint

    if pretrained:
        return from_pretrained(f"torchvision:{arch}")
    return ready_model(torchvision_checkpoint(arch, None), f"torchvision:{arch}")


def ssd300_vgg16(pretrained: bool = True):
    """torchvision's SSD300 VGG16 (COCO_V1: box AP 25.1 on val2017) as a multibox SSD."""
    return _torchvision_ssd("ssd300_vgg16", pretrained)


def ssdlite320_mobilenet_v3_large(pretrained: bool = True):
    """torchvision's SSDLite320 MobileNetV3-Large (COCO_V1: box AP 21.3 on val2017) as a multibox SSD."""
    return _torchvision_ssd("ssdlite320_mobilenet_v3_large", pretrained)


def from_checkpoint(path: str):
    """A multibox checkpoint (trained or imported) as a ready SSD."""
    from multibox.inference.pretrained import from_pretrained

    return from_pretrained(path)
