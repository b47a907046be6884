"""python -m exif_jax SUBCOMMAND ...: same as the `exif-jax` console script."""

from exif_jax.cli import subcommands

if __name__ == "__main__":
  subcommands.main()
