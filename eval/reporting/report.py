"""OUT/report.html: one self-contained page (images embedded) that opens with no server.

The page is made from OUT alone (thumbnails, maps), never from the inputs or a path a result
file names, and every text from a result file is escaped.
"""

from __future__ import annotations

import base64
import html
import io
import pathlib
from typing import Any, Sequence

import numpy as np
from PIL import Image

from eval.localization import maps
from exif_jax.data import exif_attrs
from exif_jax.data import files

THUMBNAIL = 384
THUMBNAIL_QUALITY = 90  # OUT/thumbs are JPEGs: the input's look, not its pixels, is kept.
ROBUSTNESS_CHART = "robustness.png"  # Written by eval.runs.robustness; shown when OUT has it.
# A perceptual dark-to-bright ramp (black, purple, orange, yellow): high = inconsistent.
_RAMP = np.array([[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]],
                 np.float32)
# The ramp sampled at 256 levels: colouring is one uint8 lookup, no float HxWx3 temporaries.
_LEVELS = np.linspace(0, len(_RAMP) - 1, 256)
_LUT = np.stack([np.interp(_LEVELS, np.arange(len(_RAMP)), _RAMP[:, c]) for c in range(3)],
                axis=-1).astype(np.uint8)


def heatmap_rgb(heat: np.ndarray) -> np.ndarray:
  """float HxW in [0, 1] -> uint8 HxWx3 through the colour ramp."""
  return np.take(_LUT, _levels(heat), axis=0)


def heatmap_image(heat: np.ndarray) -> Image.Image:
  """heatmap_rgb's colours as a palette image: one byte a pixel, so its PNG encodes fast."""
  levels = _levels(heat)
  image = Image.frombytes("P", levels.shape[::-1], levels.tobytes())
  image.putpalette(_LUT.tobytes())
  return image


def _levels(heat: np.ndarray) -> np.ndarray:
  return (np.clip(heat, 0, 1) * 255 + 0.5).astype(np.uint8)


def thumbnail(pixels: np.ndarray) -> np.ndarray:
  """The image at most THUMBNAIL px on its long side, as OUT/thumbs keeps it."""
  image = Image.fromarray(pixels)
  image.thumbnail((THUMBNAIL, THUMBNAIL))
  return np.asarray(image)


def _data_uri(png: bytes) -> str:
  return "data:image/png;base64," + base64.b64encode(png).decode()


def _png_data_uri(pixels: np.ndarray) -> str:
  buffer = io.BytesIO()
  Image.fromarray(thumbnail(pixels)).save(buffer, format="PNG")
  return _data_uri(buffer.getvalue())


def _figure(pixels: np.ndarray, caption: str) -> str:
  return (f'<figure><img src="{_png_data_uri(pixels)}" alt="{html.escape(caption)}">'
          f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _panels(out: pathlib.Path, record: dict[str, Any]) -> list[str]:
  stem = record["stem"]  # A storage name: one path component, never a path from elsewhere.
  with Image.open(out / "thumbs" / f"{stem}.jpg") as thumb:
    original = np.asarray(thumb.convert("RGB"))
  heat = np.load(out / "maps" / f"{stem}.npy")
  heat_rgb = np.asarray(Image.fromarray(heatmap_rgb(maps.stretched(heat))).resize(
      original.shape[1::-1]))
  overlay = (0.45 * original + 0.55 * heat_rgb).astype(np.uint8)
  caption = f"heatmap overlay (colours span {heat.min():.2f} to {heat.max():.2f})"
  panels = [_figure(original, "original"), _figure(overlay, caption),
            _figure(((heat > 0.5) * 255).astype(np.uint8), "mask at 0.5")]
  ncuts = out / "ncuts" / f"{stem}.npy"
  if ncuts.exists():
    panels.append(_figure(((np.load(ncuts) > 0.5) * 255).astype(np.uint8), "normalized cuts"))
  attr_file = out / "attr_maps" / f"{stem}.npz"
  if attr_file.exists():
    attribute_maps = np.load(attr_file)["maps"]
    for name in record["separating"]:
      if name in exif_attrs.INDEX:
        panels.append(_figure(heatmap_rgb(attribute_maps[exif_attrs.INDEX[name]]), name))
  return panels


def _section(out: pathlib.Path, record: dict[str, Any]) -> str:
  heading = (f'<section id="{html.escape(record["stem"])}"><h2>{html.escape(record["name"])}'
             f'</h2><p class="image">{html.escape(record["image"])}</p>')
  if "error" in record:
    return f'{heading}<p class="error">No map: {html.escape(record["error"])}</p></section>'
  facts = f"score {record['score']:.3f} &middot; {html.escape(record['verdict'])}"
  if record["no_signal"]:
    facts += " &middot; no signal: every patch looks alike, nothing to localize"
  if "metrics" in record:
    facts += f" &middot; p-AP {record['metrics']['p-ap']:.3f}"
  return (f'{heading}<p>{facts}</p>'
          f'<div class="panels">{"".join(_panels(out, record))}</div></section>')


def _provenance(settings: dict[str, Any]) -> str:
  """One line naming the weights and options behind every map of the page."""
  options = ", ".join(f"{name} {value}" for name, value in sorted(settings.items())
                      if name != "model_sha256")
  source = (f'Model sha256 <code>{html.escape(str(settings["model_sha256"])[:16])}</code>'
            if "model_sha256" in settings else "No model")
  return f'<p class="settings">{source}; {html.escape(options)}.</p>'


def _robustness(out: pathlib.Path) -> str:
  """The robustness sweep's chart (OUT/robustness.png), when OUT holds one."""
  chart = out / ROBUSTNESS_CHART
  if not chart.is_file():
    return ""
  return (f'<section id="robustness"><h2>Robustness</h2><p>Metrics of the same inputs '
          f'post-processed at each level (robustness.json; each level\'s maps in perturb/).</p>'
          f'<img class="chart" src="{_data_uri(chart.read_bytes())}" alt="robustness chart">'
          f'</section>')


def write(out: pathlib.Path, records: Sequence[dict[str, Any]], title: str,
          settings: dict[str, Any]) -> pathlib.Path:
  """Writes OUT/report.html: an index sorted by score, then one section per image.

  `settings` (OUT/settings.json) is printed, so that a saved page names the model it shows.
  """
  ranked = sorted(records, key=lambda r: -r.get("score", -1.0))
  rows = "".join(
      f'<tr><td><a href="#{html.escape(r["stem"])}">{html.escape(r["name"])}</a></td>'
      + (f"<td>{r['score']:.3f}</td><td>{html.escape(r['verdict'])}</td></tr>" if "score" in r
         else f'<td>&mdash;</td><td class="error">{html.escape(r["error"])}</td></tr>')
      for r in ranked)
  page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; background: #fafafa; }}
table {{ border-collapse: collapse; }} td, th {{ padding: 2px 12px; border-bottom: 1px solid #ddd; }}
.panels {{ display: flex; flex-wrap: wrap; gap: 8px; }}
figure {{ margin: 0; }} figcaption {{ font-size: 90%; color: #444; }}
img {{ max-width: {THUMBNAIL}px; border: 1px solid #ccc; }}
img.chart {{ max-width: 100%; }}
.error {{ color: #a00; }} .image {{ color: #666; font-size: 90%; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p>High (bright) = inconsistent with the image's dominant region. Each overlay spans its own
map's range (printed under it); the mask is the map above 0.5. Score = mean of the map; above
0.5 the image is called spliced.</p>
{_provenance(settings)}
<table><tr><th>image</th><th>score</th><th>verdict</th></tr>{rows}</table>
{_robustness(out)}
{"".join(_section(out, r) for r in ranked)}
</body></html>
"""
  path = out / "report.html"
  files.write_atomic(path, page)
  return path
