"""python -m exif_jax SUBCOMMAND ...: same as the `exif-jax` console script."""

from exif_jax import cli

if __name__ == "__main__":
  cli.main()
