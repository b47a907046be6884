"""The paper's Camera-Classification baseline (4.2): each patch's camera model (Make + Model),
a softmax over the training photos' cameras. At test time the camera most patches predict is
the natural region and the patches that predict another are the splice
(eval/localization/camera_classifier.py).

python -m exif_jax.main --config configs/camera_classification.py --workdir W \
    --config.data.data_dir=SHARDS
The network and schedule are configs/exif_resnet50.py's (the paper's); those of cpu.py or
tiny.py with --config configs/camera_classification.py:cpu (or :tiny). A camera is a class
when data.min_photos_per_value training photos hold it; validation, on held-out cameras,
scores whether two patches' predicted cameras agree.
"""

from configs import common


def get_config(base: str = "exif_resnet50"):
  return common.baseline_config("camera_classification", base)
