"""Reads run ahead of the loop and writes behind it, in order, bounded, and no thread outlives
its block, even when the loop stops with a Ctrl-C."""

import threading
import time

import pytest

from eval.runs import pipeline


def pipeline_threads() -> list[threading.Thread]:
  return [t for t in threading.enumerate() if t.name.startswith(("read_ahead", "write_behind"))]


def test_reads_come_in_order_at_most_two_ahead_of_the_loop():
  started = []
  lock = threading.Lock()

  def read(item):
    with lock:
      started.append(item)
    return item * item

  with pipeline.ahead(read, range(10), depth=2) as reads:
    for i in range(10):
      result = next(reads)
      with lock:
        assert max(started) <= i + 2  # Item i plus the two after it, never more.
      assert result == i * i
    assert next(reads, None) is None


def test_a_read_error_is_raised_where_its_result_is_asked_for():
  def read(item):
    if item == 1:
      raise ValueError("bad item")
    return item

  with pipeline.ahead(read, range(3)) as reads:
    assert next(reads) == 0
    with pytest.raises(ValueError, match="bad item"):
      next(reads)
  assert not pipeline_threads()


def test_ctrl_c_in_the_loop_leaves_no_thread_and_the_submitted_writes_done():
  written = []

  def read(item):
    if item >= 3:
      time.sleep(0.2)  # Still running when the loop stops.
    return item

  with pytest.raises(KeyboardInterrupt):
    with pipeline.ahead(read, range(100)) as reads, pipeline.Behind() as writes:
      for _ in range(3):
        writes.submit(written.append, next(reads))
      raise KeyboardInterrupt
  assert written == [0, 1, 2]
  assert not pipeline_threads()


def test_writes_run_in_order_and_their_first_error_ends_the_block():
  written = []

  def write(item):
    if item == 3:
      raise OSError("disk full")
    written.append(item)
    return item

  with pytest.raises(OSError, match="disk full"):
    with pipeline.Behind(depth=2) as writes:
      done = [writes.submit(write, item) for item in range(5)]
  assert written == [0, 1, 2, 4]
  assert [f.result() for f in done[:3]] == [0, 1, 2]
  assert not pipeline_threads()
