"""Models: the ResNet v2 backbone and the Siamese EXIF-consistency network.

May import: exif_jax.data (the attribute list).
"""

from exif_jax.models.resnet_v2 import ResidualUnit, ResNetV2
from exif_jax.models.siamese import (
    ConsistencyClassifier, ExifConsistencyModel, default_config, scale_patches)

__all__ = [
    "ConsistencyClassifier",
    "ExifConsistencyModel",
    "ResNetV2",
    "ResidualUnit",
    "default_config",
    "scale_patches",
]
