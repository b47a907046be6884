"""How every command runs: the `exif-jax` dispatcher, exit statuses and one-line errors, and
Ctrl-C that is never lost.

May import: nothing else of the project (the dispatcher imports a subcommand's module by name,
only when it is chosen).
"""
