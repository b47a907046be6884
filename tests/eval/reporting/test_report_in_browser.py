"""report.html renders offline in headless Chromium: every embedded image decodes."""

import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Counts the report's images that the browser decoded; the title shows it in the DOM dump.
_COUNT_DECODED = ("<script>window.onload = () => { const images = [...document.images]; "
                  "document.title = `decoded ${images.filter(i => i.naturalWidth > 0).length}"
                  " of ${images.length}`; };</script>")


@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (apt-get install chromium)")
def test_report_renders_in_headless_chromium(bundled_examples_out, tmp_path):
  page = tmp_path / "page.html"
  page.write_text((bundled_examples_out / "report.html").read_text().replace("</body>", _COUNT_DECODED + "</body>"))
  browser = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access"]
  dom = subprocess.run([*browser, "--dump-dom", page.as_uri()], capture_output=True, text=True,
                       check=True, timeout=120).stdout
  title = dom.split("<title>")[1].split("</title>")[0]
  decoded, total = (int(n) for n in title.removeprefix("decoded ").split(" of "))
  assert total >= 12 and decoded == total, title
  shot = tmp_path / "report.png"
  subprocess.run([*browser, f"--screenshot={shot}", "--window-size=1200,1600", page.as_uri()],
                 capture_output=True, check=True, timeout=120)
  assert np.asarray(Image.open(shot).convert("L")).std() > 10  # Not a blank page.
