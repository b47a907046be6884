"""configs/cpu_two_stream.py plus a head that names each patch's make: camera attributes too.

Pair labels say only whether two photos share a make; naming the make of each patch's photo
gives the colour stream a target per patch, with a class shared by the camera models of a
make, so held-out models of known makes fall near their make. One linear layer more than
cpu_two_stream.py, the same 4000 steps on 2 CPU cores.
"""

from configs import cpu_two_stream


def get_config():
  config = cpu_two_stream.get_config()
  # Read from the colour stream's half of the feature: post-processing stays with the other.
  config.model.named_exif_tags = ("Image Make",)
  return config
