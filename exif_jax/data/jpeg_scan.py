"""Whether a JPEG's first scan holds enough data for the image its header declares.

libjpeg pads a scan that ends early with empty blocks and reports no error, so a 2 KB file
whose frame header claims 10000x10000 decodes, slowly and into gigabytes, to a grey picture.
Every Huffman-coded block costs at least the shortest DC code (and, in a sequential scan, the
shortest AC code for its end-of-block), so the first scan's length bounds the blocks it can
hold. The check reads the markers and counts bytes: its cost follows the file, not the
declared size, and it never refuses a complete file.
"""

from __future__ import annotations

import dataclasses
import math
import mmap

_SOF_HUFFMAN = {0xC0: "baseline", 0xC1: "sequential", 0xC2: "progressive"}
_SOS, _DHT, _EOI = 0xDA, 0xC4, 0xD9
_STANDALONE = {0x01, *range(0xD0, 0xD8)}  # TEM and RSTn carry no length.


@dataclasses.dataclass
class _Frame:
  width: int = 0
  height: int = 0
  progressive: bool = False
  sampling: dict[int, tuple[int, int]] = dataclasses.field(default_factory=dict)


def _shortest_code(table: bytes) -> int:
  """Bits of the shortest code of a DHT table (its 16 per-length counts)."""
  return next((length for length, count in enumerate(table[:16], 1) if count), 16)


def _scan_end(data: bytes, start: int) -> int:
  """Index of the marker that ends the entropy-coded data beginning at `start`."""
  position = start
  while True:
    position = data.find(b"\xff", position)
    if position < 0 or position + 1 >= len(data):
      return len(data)
    following = data[position + 1]
    if following == 0 or 0xD0 <= following <= 0xD7 or following == 0xFF:
      position += 1 if following == 0xFF else 2
      continue
    return position


def _blocks(frame: _Frame, components: list[int]) -> int:
  """8x8 blocks a scan of these components codes (interleaved: whole MCUs)."""
  h_max = max(h for h, _ in frame.sampling.values())
  v_max = max(v for _, v in frame.sampling.values())
  if len(components) == 1:
    h, v = frame.sampling[components[0]]
    return (math.ceil(math.ceil(frame.width * h / h_max) / 8)
            * math.ceil(math.ceil(frame.height * v / v_max) / 8))
  mcus = math.ceil(frame.width / (8 * h_max)) * math.ceil(frame.height / (8 * v_max))
  return mcus * sum(math.prod(frame.sampling[c]) for c in components)


def truncation(data: bytes | mmap.mmap) -> str | None:
  """A one-line reason when the first scan is too short for the declared image, else None.

  Files that are not Huffman-coded JPEGs, or whose markers cannot be followed, get None:
  the decoder judges those.
  """
  if data[:2] != b"\xff\xd8":
    return None
  frame, shortest, position = _Frame(), {}, 2
  while position + 4 <= len(data):
    if data[position] != 0xFF:
      return None
    marker = data[position + 1]
    if marker == 0xFF:
      position += 1
      continue
    if marker in _STANDALONE:
      position += 2
      continue
    if marker == _EOI:
      return "truncated: no image data before the end marker"
    length = int.from_bytes(data[position + 2:position + 4], "big")
    segment = data[position + 4:position + 2 + length]
    if marker in _SOF_HUFFMAN and len(segment) >= 6:
      frame.height, frame.width = (int.from_bytes(segment[1:3], "big"),
                                   int.from_bytes(segment[3:5], "big"))
      frame.progressive = _SOF_HUFFMAN[marker] == "progressive"
      frame.sampling = {segment[6 + 3 * i]: (segment[7 + 3 * i] >> 4, segment[7 + 3 * i] & 15)
                        for i in range(segment[5]) if 7 + 3 * i < len(segment)}
    elif 0xC3 <= marker <= 0xCF and marker not in (_DHT, 0xC8, 0xCC):
      return None  # Lossless, hierarchical or arithmetic-coded: not bounded here.
    elif marker == _DHT:
      offset = 0
      while offset + 17 <= len(segment):
        table_class, table_id = segment[offset] >> 4, segment[offset] & 15
        counts = segment[offset + 1:offset + 17]
        shortest[(table_class, table_id)] = _shortest_code(counts)
        offset += 17 + sum(counts)
    elif marker == _SOS:
      return _first_scan(data, position + 2 + length, segment, frame, shortest)
    position += 2 + length
  return None


def _first_scan(data: bytes, start: int, header: bytes, frame: _Frame,
                shortest: dict[tuple[int, int], int]) -> str | None:
  if not frame.sampling or not header or frame.width * frame.height == 0:
    return None
  count = header[0]
  selectors = {header[1 + 2 * i]: header[2 + 2 * i] for i in range(count)
               if 2 + 2 * i < len(header)}
  if not selectors or not set(selectors) <= set(frame.sampling):
    return None
  spectral_start = header[1 + 2 * count] if 1 + 2 * count < len(header) else 0
  if frame.progressive and spectral_start != 0:
    return None  # An AC scan first: end-of-band runs may cover many blocks in a few bits.
  blocks = _blocks(frame, list(selectors))
  bits_per_block = max(1, min(shortest.get((0, s >> 4), 16) for s in selectors.values()))
  if not frame.progressive:
    bits_per_block += min(shortest.get((1, s & 15), 16) for s in selectors.values())
  available = 8 * (_scan_end(data, start) - start)
  if available < blocks * bits_per_block:
    return (f"truncated: {frame.width}x{frame.height} needs at least "
            f"{blocks * bits_per_block // 8} bytes of image data, the file holds "
            f"{available // 8}")
  return None
