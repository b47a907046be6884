"""Models: the ResNet v2 backbone and the Siamese EXIF-consistency network."""

from exif_jax.models.resnet_v2 import ResidualUnit, ResNetV2
from exif_jax.models.siamese import (
    OPTIONAL_FIELDS, ConsistencyClassifier, ExifConsistencyModel, scale_patches)

__all__ = [
    "ConsistencyClassifier",
    "ExifConsistencyModel",
    "OPTIONAL_FIELDS",
    "ResNetV2",
    "ResidualUnit",
    "scale_patches",
]
