"""Ctrl-C that is never lost: loops check for it between items.

Python drops an exception raised inside a garbage-collector callback (JAX installs one), so the
KeyboardInterrupt of a SIGINT that lands there vanishes (after a traceback on stderr) and the
command runs on to the end. install() records every SIGINT before raising as usual and keeps the
dropped exception quiet; a long loop calls raise_if_pressed() between its items (images, steps),
which stops it within one item.
"""

from __future__ import annotations

import signal
import sys
import threading

_pressed = threading.Event()


def _record_and_raise(signum, frame) -> None:
  _pressed.set()
  signal.default_int_handler(signum, frame)


def install() -> None:
  """Records SIGINT from now on; a SIGINT that the shell set to be ignored stays ignored."""
  if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
    signal.signal(signal.SIGINT, _record_and_raise)
    sys.unraisablehook = _quiet_when_recorded(sys.unraisablehook)


def _quiet_when_recorded(hook):
  def quiet(unraisable) -> None:
    if not (_pressed.is_set() and isinstance(unraisable.exc_value, KeyboardInterrupt)):
      hook(unraisable)
  return quiet


def raise_if_pressed() -> None:
  """KeyboardInterrupt when Ctrl-C came since install(), even if its own exception was lost."""
  if _pressed.is_set():
    raise KeyboardInterrupt
