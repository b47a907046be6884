"""exif-jax: image splice detection by learned EXIF self-consistency (Huh et al., ECCV 2018)."""
