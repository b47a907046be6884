"""Ctrl-C that is never lost: loops check for it between items.

Python drops an exception raised inside a garbage-collector callback (JAX installs one), so the
KeyboardInterrupt of a SIGINT that lands there vanishes (after a traceback on stderr) and the
command runs on to the end. install() records every SIGINT before raising as usual and keeps the
dropped exception quiet; a long loop calls raise_if_pressed() between its items (images, steps),
which stops it within one item.

While a command starts (imports, flags) and while it imports JAX later, SIGINT is held: blocked
by the OS and delivered once that ends. A KeyboardInterrupt raised in the middle of an import
ends in a traceback, and a signal that lands while jaxlib initialises crashes the process
(SIGSEGV, seen with a plain `import jax`). hold() holds it from the start; install(), once the
command runs, lets it through; held() holds it around a late import.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from typing import Iterator

_pressed = threading.Event()


def _record_and_raise(signum, frame) -> None:
  _pressed.set()
  signal.default_int_handler(signum, frame)


def hold() -> None:
  """Holds SIGINT from now until install() (a command starting up)."""
  signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})


def install() -> None:
  """Records SIGINT from now on and raises it, starting with one held since hold(); a SIGINT
  that the shell set to be ignored stays ignored."""
  if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
    signal.signal(signal.SIGINT, _record_and_raise)
    sys.unraisablehook = _quiet_when_recorded(sys.unraisablehook)
  signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


@contextlib.contextmanager
def held() -> Iterator[None]:
  """SIGINT held during the block (an import that loads jaxlib), delivered when it ends."""
  previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
  try:
    yield
  finally:
    signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _quiet_when_recorded(hook):
  def quiet(unraisable) -> None:
    if not (_pressed.is_set() and isinstance(unraisable.exc_value, KeyboardInterrupt)):
      hook(unraisable)
  return quiet


def raise_if_pressed() -> None:
  """KeyboardInterrupt when Ctrl-C came since install(), even if its own exception was lost."""
  if _pressed.is_set():
    raise KeyboardInterrupt
