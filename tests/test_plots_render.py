"""`dvc plots show` renders to HTML that opens offline in headless Chromium and shows every plot."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pipeline_helpers import env

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed")
@pytest.mark.skipif(shutil.which("npm") is None, reason="npm is needed to fetch vega once")
def test_committed_plots_render_in_headless_chromium(tmp_path: Path) -> None:
    from render_plots import rendered_dom

    output, png = tmp_path / "plots", tmp_path / "plots.png"
    result = subprocess.run(
        [
            sys.executable,
            "scripts/render_plots.py",
            "--output-dir",
            str(output),
            "--screenshot",
            str(png),
        ],
        cwd=REPO,
        env=env(),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert png.stat().st_size > 20_000  # a blank page is a few kB
    # a folder entry gives one plot per file; a plot of another task holds no data ([])
    shown = subprocess.run(
        [str(Path(sys.executable).parent / "dvc"), "plots", "show", "--json"],
        cwd=REPO,
        env=env(),
        capture_output=True,
        text=True,
        check=True,
    )
    listed = json.loads(shown.stdout)["data"]
    with_data = [name for name, plots in listed.items() if plots]
    assert len(with_data) > len(yaml.safe_load((REPO / "dvc.yaml").read_text())["plots"])
    dom = rendered_dom(output / "index.html")
    # vega-embed draws each listed plot into a <canvas> once its scripts have loaded (offline);
    # DVC's page also draws the empty chart of a plot another task fills (actual_vs_predicted)
    assert dom.count("<canvas") == len(listed), dom[:2000]
