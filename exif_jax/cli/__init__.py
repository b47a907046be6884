"""How every command runs: the `exif-jax` dispatcher, exit statuses and one-line errors,
Ctrl-C that is never lost, and SIGTERM that saves before it goes.

May import: exif_jax.data (the file rules its messages follow). The dispatcher imports a
subcommand's module by name, only when it is chosen.
"""
