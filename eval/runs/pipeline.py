"""Host work in threads beside a loop that keeps the devices busy: the next items are read
ahead (`ahead`) and the finished ones written behind (`Behind`), a bounded number each.

Both leave no thread behind when their block ends, by Ctrl-C or any error: items not started
are dropped (reads) or finished (writes, a few at most), then the threads are joined.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
from concurrent import futures
from typing import Any, Callable, Iterable, Iterator, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


@contextlib.contextmanager
def ahead(fn: Callable[[Item], Result], items: Iterable[Item],
          depth: int = 2) -> Iterator[Iterator[Result]]:
  """An iterator over fn(item) for each item, in order, computed in `depth` threads up to
  `depth` items before the loop asks for it. fn's exceptions are raised where its result is
  asked for."""
  pool = futures.ThreadPoolExecutor(depth, thread_name_prefix="read_ahead")
  try:
    yield _in_order(pool, fn, iter(items), depth)
  finally:
    pool.shutdown(wait=True, cancel_futures=True)


def _in_order(pool: futures.Executor, fn: Callable[[Item], Result], items: Iterator[Item],
              depth: int) -> Iterator[Result]:
  pending = collections.deque(pool.submit(fn, item) for item in itertools.islice(items, depth))
  while pending:
    done = pending.popleft()
    for item in itertools.islice(items, 1):  # Keep `depth` in flight while the loop works.
      pending.append(pool.submit(fn, item))
    yield done.result()


class Behind(contextlib.AbstractContextManager):
  """Runs calls in submission order in one background thread; `submit` waits while `depth`
  earlier ones are unfinished, so a slow disk holds the loop back instead of filling memory.

  Leaving the block waits for every call submitted; the first exception of one is raised then
  (or by a later `submit`).
  """

  def __init__(self, depth: int = 2):
    self._pool = futures.ThreadPoolExecutor(1, thread_name_prefix="write_behind")
    self._pending: collections.deque[futures.Future] = collections.deque()
    self._depth = depth

  def submit(self, fn: Callable[..., Any], *args: Any) -> futures.Future:
    while len(self._pending) >= self._depth:
      self._pending.popleft().result()
    self._pending.append(self._pool.submit(fn, *args))
    return self._pending[-1]

  def __exit__(self, exc_type, exc, traceback) -> None:
    self._pool.shutdown(wait=True)
    if exc_type is None:
      for done in self._pending:
        done.result()
