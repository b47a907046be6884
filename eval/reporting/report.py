"""OUT/report.html: one self-contained page (images embedded) that opens with no server.

The page is made from OUT alone (thumbnails, maps), never from the inputs or a path a result
file names, and every text from a result file is escaped.
"""

from __future__ import annotations

import base64
import html
import io
import json
import pathlib
from typing import Any, Sequence

import numpy as np
from PIL import Image
from PIL import ImageDraw
from PIL import ImageFilter
from PIL import ImageFont

from eval.reporting import attribute_groups
from eval.reporting import header
from exif_jax.data import exif_attrs
from exif_jax.data import files

THUMBNAIL = 384
THUMBNAIL_QUALITY = 90  # OUT/thumbs are JPEGs: the input's look, not its pixels, is kept.
ROBUSTNESS_CHART = "robustness.png"  # Written by eval.runs.robustness; shown when OUT has it.
METRICS = "metrics.json"  # Written by eval.runs.summary when masks are known.
TRUTH = "truth"  # OUT/truth/<name>.png: an image's ground-truth mask at the thumbnail's size.
NUM_ATTRIBUTE_MAPS = 6
MAP_OUTLINE, TRUTH_OUTLINE = (0, 229, 255), (255, 0, 200)  # Cyan, magenta: seen on any photo.
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


def _png(image: Image.Image) -> bytes:
  buffer = io.BytesIO()
  image.save(buffer, format="PNG")
  return buffer.getvalue()


def _png_data_uri(pixels: np.ndarray) -> str:
  return _data_uri(_png(Image.fromarray(thumbnail(pixels))))


def _figure(pixels: np.ndarray, caption: str) -> str:
  return (f'<figure><img src="{_png_data_uri(pixels)}" alt="{html.escape(caption)}">'
          f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def colour_bar() -> Image.Image:
  """The maps' one scale, 0 to 1, with its ends named: every map of a page is read on it."""
  width, left, bar = 420, 12, 18
  image = Image.new("RGB", (width, bar + 26), (250, 250, 250))
  ramp = heatmap_rgb(np.linspace(0, 1, width - 2 * left))
  image.paste(Image.fromarray(np.repeat(ramp[None], bar, axis=0)), (left, 2))
  draw = ImageDraw.Draw(image)
  font = ImageFont.load_default(size=14)
  for x, label, anchor in ((left, "0 consistent", "lt"), (width // 2, "0.5", "mt"),
                           (width - left, "1 inconsistent", "rt")):
    draw.text((x, bar + 6), label, fill=(40, 40, 40), font=font, anchor=anchor)
  return image


def outlined(photo: np.ndarray, region: np.ndarray, colour: tuple[int, int, int]
             ) -> np.ndarray:
  """The photo with the border of `region` (bool, any size: resized to the photo) drawn
  about 2 px wide; a region that reaches the photo's edge is closed along it."""
  mask = Image.fromarray(np.pad(region, 1).astype(np.uint8) * 255).resize(
      (photo.shape[1] + 2, photo.shape[0] + 2), Image.NEAREST)
  edge = (np.asarray(mask.filter(ImageFilter.MaxFilter(3)))
          != np.asarray(mask.filter(ImageFilter.MinFilter(3))))[1:-1, 1:-1]
  drawn = photo.copy()
  drawn[edge] = colour
  return drawn


def _map_panels(original: np.ndarray, heat: np.ndarray, threshold: float) -> list[str]:
  """The map over the photo on the fixed scale, and its mask outlined on the photo."""
  heat_rgb = np.asarray(Image.fromarray(heatmap_rgb(heat)).resize(original.shape[1::-1]))
  overlay = (0.45 * original + 0.55 * heat_rgb).astype(np.uint8)
  region = heat >= threshold
  mask_caption = (f"map at or above {threshold:.2f}, outlined" if region.any()
                  else f"no pixel at or above {threshold:.2f}")
  return [_figure(overlay, f"map (0-1 scale; from {heat.min():.2f} to {heat.max():.2f})"),
          _figure(outlined(original, region, MAP_OUTLINE), mask_caption)]


def _caption(name: str) -> str:
  """An attribute's plain name, then its tag for whoever knows EXIF."""
  plain = attribute_groups.plain_name(name)
  return plain if plain == name else f"{plain} ({name})"


def _attribute_panels(out: pathlib.Path, stem: str, shown: Sequence[str]) -> str:
  """The NUM_ATTRIBUTE_MAPS maps of `shown` that vary most over this image, by group."""
  attr_file = out / "attr_maps" / f"{stem}.npz"
  if not (shown and attr_file.exists()):
    return ""
  attribute_maps = np.load(attr_file)["maps"]
  spread = {name: float(attribute_maps[exif_attrs.INDEX[name]].std()) for name in shown}
  varying = sorted(shown, key=lambda name: -spread[name])[:NUM_ATTRIBUTE_MAPS]
  groups = "".join(
      f'<div class="group"><h3>{html.escape(group)}</h3><div class="panels">'
      + "".join(_figure(heatmap_rgb(attribute_maps[exif_attrs.INDEX[name]]), _caption(name))
                for name in names)
      + "</div></div>"
      for group, names in attribute_groups.by_group(
          sorted(varying, key=exif_attrs.INDEX.get)).items())
  return f'<div class="attributes">{groups}</div>'


def _panels(out: pathlib.Path, record: dict[str, Any], threshold: float) -> list[str]:
  stem = record["stem"]  # A storage name: one path component, never a path from elsewhere.
  with Image.open(out / "thumbs" / f"{stem}.jpg") as thumb:
    original = np.asarray(thumb.convert("RGB"))
  panels = [_figure(original, "original"),
            *_map_panels(original, np.load(out / "maps" / f"{stem}.npy"), threshold)]
  truth = out / TRUTH / f"{stem}.png"
  if truth.exists():
    with Image.open(truth) as mask:
      panels.append(_figure(outlined(original, np.asarray(mask) > 0, TRUTH_OUTLINE),
                            "ground truth, outlined"))
  ncuts = out / "ncuts" / f"{stem}.npy"
  if ncuts.exists():
    panels.append(_figure(outlined(original, np.load(ncuts) > 0.5, MAP_OUTLINE),
                          "normalized cuts segment, outlined"))
  return panels


def _section(out: pathlib.Path, record: dict[str, Any], threshold: float,
             shown: Sequence[str]) -> str:
  heading = (f'<section id="{html.escape(record["stem"])}"><h2>{html.escape(record["name"])}'
             f'</h2><p class="image">{html.escape(record["image"])}</p>')
  if "error" in record:
    return f'{heading}<p class="error">No map: {html.escape(record["error"])}</p></section>'
  facts = f"score {record['score']:.3f} &middot; {html.escape(record['verdict'])}"
  if record["no_signal"]:
    facts += " &middot; no signal: every patch looks alike, nothing to localize"
  if record.get("spliced") is not None:
    facts += f" &middot; ground truth: {'spliced' if record['spliced'] else 'authentic'}"
  if "metrics" in record:
    facts += f" &middot; p-AP {record['metrics']['p-ap']:.3f}"
  return (f'{heading}<p>{facts}</p>'
          f'<div class="panels">{"".join(_panels(out, record, threshold))}</div>'
          f'{_attribute_panels(out, record["stem"], shown)}</section>')


def _attribute_rule(settings: dict[str, Any], validation: dict[str, Any] | None,
                    shown: Sequence[str]) -> str:
  """Which attribute maps the page shows and why, or why it shows none."""
  if settings.get("method") == "noise" or not settings.get("attribute_maps"):
    return ""
  if not validation:
    return ("<p>No attribute maps: without the model's validation.json nothing says which "
            "attributes it tells apart on camera models it never trained on.</p>")
  return (f"<p>Attribute maps: per image, the {NUM_ATTRIBUTE_MAPS} that vary most over it, "
          f"among the {len(shown)} attributes the model tells apart on camera models it never "
          f"trained on (validation AUC &ge; {attribute_groups.SHOWN_FROM_AUC}).</p>")


def _provenance(settings: dict[str, Any]) -> str:
  """One line naming the weights and options behind every map of the page (the verdict rule
  is in the header)."""
  options = ", ".join(f"{name} {value}" for name, value in sorted(settings.items())
                      if name not in ("model_sha256", "calibration"))
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


def _json(path: pathlib.Path) -> dict[str, Any]:
  """A summary file of OUT, {} when there is none."""
  return json.loads(path.read_text()) if path.is_file() else {}


def write(out: pathlib.Path, records: Sequence[dict[str, Any]], title: str,
          settings: dict[str, Any]) -> pathlib.Path:
  """Writes OUT/report.html: the header (model, verdict rule, scale, metrics), an index sorted
  by score, then one section per image.

  `settings` (OUT/settings.json) is printed, so that a saved page names the model it shows.
  """
  facts = _json(out / header.MODEL_FACTS)
  validation = facts.get("validation")
  shown = attribute_groups.told_apart(validation)
  threshold = header.pixel_threshold(settings)
  bar = (f'<img class="scale" src="{_data_uri(_png(colour_bar()))}" '
         f'alt="colour scale: 0 consistent to 1 inconsistent">')
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
figure {{ margin: 0; }} figcaption {{ font-size: 90%; color: #444; max-width: {THUMBNAIL}px; }}
img {{ max-width: {THUMBNAIL}px; border: 1px solid #ccc; }}
img.chart {{ max-width: 100%; }} img.scale {{ border: none; }}
h3 {{ font-size: 100%; margin: 8px 0 4px; }}
.error {{ color: #a00; }} .image {{ color: #666; font-size: 90%; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
{header.write(settings, facts, _json(out / METRICS) or None, bar)}
{_attribute_rule(settings, validation, shown)}
{_provenance(settings)}
<table><tr><th>image</th><th>score</th><th>verdict</th></tr>{rows}</table>
{_robustness(out)}
{"".join(_section(out, r, threshold, shown) for r in ranked)}
</body></html>
"""
  path = out / "report.html"
  files.write_atomic(path, page)
  return path
