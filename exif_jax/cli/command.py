"""How every exif-jax command runs: absl's app.run with quiet libraries and shared exit statuses.

By default a command prints only its own progress bar, results and one-line messages; the
INFO and WARNING logs of JAX, XLA, Orbax and the other libraries (and their Python warnings)
appear with -v (absl's --verbosity=0) or any --verbosity, in absl's own format.
"""

from __future__ import annotations

import functools
import importlib.resources
import logging
import os
import pathlib
import re
import runpy
import sys
import traceback
import warnings
from typing import Callable, Iterator, NoReturn, Sequence

from absl import app
from absl import flags
from absl import logging as absl_logging
import ml_collections
from ml_collections.config_flags import config_flags
from tqdm import tqdm

from exif_jax.cli import ctrl_c
from exif_jax.data import files

OK = 0
SOME_SKIPPED = 1
USAGE_OR_NOTHING_DONE = 2
INTERRUPTED = 130  # 128 + SIGINT, as shells report a command stopped by Ctrl-C.
# 128 + SIGTERM, as shells report a command that SIGTERM ended: what a scheduler sent, and a
# status its restart rules can match (a Kubernetes podFailurePolicy onExitCodes, a wrapper's
# `[ $? = 143 ]`). Training exits with it after saving the step it was at.
PREEMPTED = 143

EXIT_STATUS_HELP = """
Exit status: 0 every input was used; 1 some inputs were skipped, each named on stderr (the
others are done); 2 a usage error (an unknown, missing or bad flag or argument) or nothing
could be done, said in one line; 130 interrupted (Ctrl-C): the same command resumes; 143
preempted (SIGTERM): training saved a checkpoint first, the same command resumes. An
unexpected error exits 1 with its traceback.
-v shows the logs of the libraries (JAX, XLA, Orbax), hidden by default.
"""

# Not resolved: log records name a module by the path it was imported from, as here.
_PROJECT_DIRS = tuple(os.path.join(pathlib.Path(__file__).parents[2], package, "")
                      for package in ("exif_jax", "eval", "data_prep", "configs"))


class NothingDone(Exception):
  """The command can do nothing, for the reason given: one line on stderr, exit status 2."""


class Preempted(Exception):
  """Stopped by SIGTERM once its work was saved: one line on stderr, exit status PREEMPTED."""


def exit_status(num_used: int, num_skipped: int) -> int:
  """OK when every input was used, SOME_SKIPPED when not; NothingDone when none was."""
  if not num_used:
    raise NothingDone(f"no input could be used ({num_skipped} skipped)" if num_skipped
                      else "no input found")
  return SOME_SKIPPED if num_skipped else OK


def expand_verbose_flag(args: Sequence[str]) -> list[str]:
  """A bare -v means --verbosity=0; absl's own `-v N` is left as it is."""
  expanded = list(args)
  for i, arg in enumerate(expanded):
    if arg == "--":
      break
    following = expanded[i + 1] if i + 1 < len(expanded) else ""
    if arg == "-v" and not following.lstrip("-").isdigit():
      expanded[i] = "--verbosity=0"
  return expanded


def wants_library_logs(args: Sequence[str]) -> bool:
  return any(arg == "-v" or arg.startswith(("-v=", "--verbosity", "-verbosity"))
             for arg in args)


def hide_native_logs(args: Sequence[str]) -> None:
  """Hides the C++ warnings of XLA unless logs are asked for; must run before jax's import."""
  if not wants_library_logs(args):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def run(main: Callable[[list[str]], int | None], argv: Sequence[str] | None = None
        ) -> NoReturn:
  """app.run(main) with the exit statuses of EXIT_STATUS_HELP and quiet libraries.

  `main` returns an exit status (None for OK), raises app.UsageError or NothingDone.
  """
  ctrl_c.hold()
  sys.argv = expand_verbose_flag(sys.argv if argv is None else argv)
  main_module = sys.modules["__main__"]
  main_module.__doc__ = (main_module.__doc__ or "") + EXIT_STATUS_HELP
  app.run(functools.partial(_run_main, main), argv=sys.argv, flags_parser=_parse_flags)


def shipped_config(value: str) -> str:
  """A config file flag's value, or the installed `configs/NAME.py` when the value names a
  shipped config (`cpu`, `cpu.py`, `image_consistency:cpu`) and no such file is here, so that
  `--config cpu` works from any folder."""
  path, colon, base = value.partition(":")
  if os.path.exists(path) or not re.fullmatch(r"\w+(\.py)?", path):
    return value
  shipped = importlib.resources.files("configs") / f"{path.removesuffix('.py')}.py"
  return f"{shipped}{colon}{base}" if shipped.is_file() else value


def _with_shipped_configs(argv: list[str]) -> list[str]:
  argv = list(argv)
  for name in _config_file_flags():
    for i, prefix, value in _flag_values(argv, name):
      argv[i] = prefix + shipped_config(value)
  return argv


def _parse_flags(argv: list[str]) -> list[str]:
  argv = _with_shipped_configs(argv)
  try:
    remaining = flags.FLAGS(argv)
  except flags.Error as e:
    _usage_error(f"{e} (--help lists the flags)")
  except SystemExit as e:  # absl's --help and --helpfull exit 1; asked-for help is no failure.
    sys.exit(OK if e.code == 1 else e.code)
  except Exception:  # pylint: disable=broad-except
    # Only a config file flag runs code while flags are parsed: the user's file, and the
    # look-up of each --NAME.a.b field in its config, which raise errors of any type.
    message = _config_file_error(argv)
    if message is None:
      raise
    _usage_error(message)
  # A config file flag defers a missing file's error to the config's first use.
  if any(flags.FLAGS[name].present
         and not isinstance(flags.FLAGS[name].value, ml_collections.ConfigDict)
         for name in _config_file_flags()):
    message = _config_file_error(argv)
    if message:
      _usage_error(message)
  return remaining


def _config_file_error(argv: Sequence[str]) -> str | None:
  """What keeps a config file flag's config from loading, in one line naming the file or the
  --NAME.a.b field that is not in it; None when nothing does."""
  for name in _config_file_flags():
    given = _flag_value(argv, name)
    if not given:
      continue
    path, *arguments = given.split(":", 1)  # FILE:ARGUMENT, as config_flags reads it.
    if not os.path.isfile(path):
      return f"--{name} {path}: no such file"
    try:
      module = runpy.run_path(path)
      config = module["get_config"](*arguments) if "get_config" in module else None
    except Exception as e:  # pylint: disable=broad-except  # The user's code.
      return f"--{name} {path}: not a config file ({type(e).__name__}: {e})".splitlines()[0]
    if not isinstance(config, ml_collections.ConfigDict):
      return f"--{name} {path}: not a config file (no get_config() that returns a ConfigDict)"
    for arg in argv:
      field = re.match(rf"--?(?:no)?{name}\.([^=]+)", arg)
      if field and not _has_field(config, field.group(1)):
        return f"--{name}.{field.group(1)}: no such field in the config of {path}"
  return None


def _config_file_flags() -> list[str]:
  """The names of the flags defined by config_flags.DEFINE_config_file."""
  return [name for name in flags.FLAGS
          if isinstance(flags.FLAGS[name].parser, config_flags.ConfigFileFlagParser)]


def _flag_values(argv: Sequence[str], name: str) -> Iterator[tuple[int, str, str]]:
  """(index, prefix, value) of each value given to --NAME: argv[index] is prefix + value
  ("--NAME=" for --NAME=VALUE, "" for the argument after --NAME)."""
  for i, arg in enumerate(argv):
    if arg.startswith((f"--{name}=", f"-{name}=")):
      flag, _, value = arg.partition("=")
      yield i, f"{flag}=", value
    elif arg in (f"--{name}", f"-{name}") and i + 1 < len(argv):
      yield i + 1, "", argv[i + 1]


def _flag_value(argv: Sequence[str], name: str) -> str | None:
  """The last value given to --NAME, as --NAME=VALUE or --NAME VALUE."""
  values = [value for _, _, value in _flag_values(argv, name)]
  return values[-1] if values else None


def _has_field(config: ml_collections.ConfigDict, field: str) -> bool:
  for key in field.split("."):
    if not isinstance(config, ml_collections.ConfigDict) or key not in config:
      return False
    config = config[key]
  return True


def _run_main(main: Callable[[list[str]], int | None], argv: list[str]) -> int | None:
  if not flags.FLAGS["verbosity"].present:
    _hide_library_logs()
  sys.unraisablehook = _quiet_posts_to_closed_loops(sys.unraisablehook)
  try:
    ctrl_c.install()  # Raises a Ctrl-C held while the command started up.
    return main(argv)
  except app.UsageError as e:
    _print_error(f"{e} (--help shows the usage)")
  except NothingDone as e:
    _print_error(str(e))
  except KeyboardInterrupt:
    tqdm.write("interrupted; rerun the same command to resume", file=sys.stderr)
    return INTERRUPTED
  except Preempted as e:
    tqdm.write(f"{e}; rerun the same command to resume", file=sys.stderr)
    return PREEMPTED
  except OSError as e:
    if e.errno not in files.DISK_FULL:
      raise
    # Every result is written whole or not at all: what is there stays, a rerun does the rest.
    _print_error(f"{files.display_name(e.filename or '')}: no space left on device; free some "
                 "and rerun the same command to resume")
  return USAGE_OR_NOTHING_DONE


# The coroutine in which Orbax reads one array of a checkpoint.
_ORBAX_ARRAY_READ = "_read_array_index_and_device_put"


def _quiet_posts_to_closed_loops(hook):
  """`hook` less the RuntimeError of a result posted to an asyncio loop that has closed.

  Orbax reads a checkpoint through TensorStore in an event loop of its own; when one read
  fails (a corrupt manifest) it raises and closes the loop while the other reads run on, and
  each then posts its result to the closed loop: an "Event loop is closed" traceback, often at
  exit, under the command's one error line; the other failed reads are collected unawaited at
  exit, with theirs. Nobody awaits those results, and the failure that matters has been raised
  where it happened; any other unraisable still reaches `hook`.
  """
  def quiet(unraisable) -> None:
    names = {frame.name for frame in traceback.extract_tb(unraisable.exc_traceback)}
    posted_to_closed_loop = (isinstance(unraisable.exc_value, RuntimeError)
                             and str(unraisable.exc_value) == "Event loop is closed"
                             and "call_soon_threadsafe" in names)
    # The failed reads themselves, collected unawaited at exit.
    abandoned_read = _ORBAX_ARRAY_READ in names
    if not (posted_to_closed_loop or abandoned_read):
      hook(unraisable)
  return quiet


def _print_error(message: str) -> None:
  print(f"error: {message}", file=sys.stderr)


def _usage_error(message: str) -> NoReturn:
  _print_error(message)
  sys.exit(USAGE_OR_NOTHING_DONE)


class _ProjectLines(logging.Handler):
  """The project's own records as plain lines that leave a progress bar intact.

  Records of the libraries pass only from ERROR up, less asyncio's "Task exception was never
  retrieved": the other reads of an Orbax restore that failed, whose failure was raised (see
  _quiet_posts_to_closed_loops).
  """

  def filter(self, record: logging.LogRecord) -> bool:
    if record.name == "asyncio" and str(record.msg).startswith("Task exception was never"):
      return False
    return record.levelno >= logging.ERROR or record.pathname.startswith(_PROJECT_DIRS)

  def emit(self, record: logging.LogRecord) -> None:
    try:
      prefix = f"{record.levelname.lower()}: " if record.levelno >= logging.WARNING else ""
      tqdm.write(prefix + self.format(record), file=sys.stderr)
    except Exception:  # pylint: disable=broad-except  # logging's own convention.
      self.handleError(record)


def _hide_library_logs() -> None:
  root = logging.getLogger()
  root.removeHandler(absl_logging.get_absl_handler())
  root.addHandler(_ProjectLines())
  # asyncio reports only tasks nobody awaits (an Orbax restore's other reads, once one failed),
  # also at exit, when its records may reach logging's last-resort handler instead of ours.
  logging.getLogger("asyncio").setLevel(logging.CRITICAL)
  warnings.simplefilter("ignore")
