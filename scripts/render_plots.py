"""Render `dvc plots show` (or `dvc plots diff REV...`) to HTML that works offline, and optionally
take a screenshot of it in headless Chromium.

DVC's HTML loads vega, vega-lite and vega-embed from a CDN, which a machine without internet
cannot reach, so the page stays blank. This script fetches the same three releases once from the
npm registry (`npm pack`, cached in .cache/vega/), points DVC's HTML template at local copies,
and puts them next to index.html.

    python scripts/render_plots.py                           # dvc plots show -> plots/index.html
    python scripts/render_plots.py --diff main               # dvc plots diff main
    python scripts/render_plots.py --screenshot plots.png    # also a PNG from headless Chromium
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / ".cache" / "vega"
# the versions DVC's own HTML asks the CDN for (dvc_render.vega)
PACKAGES = {"vega": "5.20.2", "vega-lite": "5.2.0", "vega-embed": "6.18.2"}
TEMPLATE = """<!DOCTYPE html>
<html>
<head>
  <meta charset="utf-8">
  <title>bertpipe plots</title>
  <script src="vega.min.js"></script>
  <script src="vega-lite.min.js"></script>
  <script src="vega-embed.min.js"></script>
  <style>body { font-family: sans-serif; } table { border-spacing: 15px; }</style>
</head>
<body>
  {plot_divs}
</body>
</html>
"""
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--virtual-time-budget=15000",
]


def vega_scripts() -> list[Path]:
    """The three minified bundles, fetched with `npm pack` on first use."""
    wanted = [CACHE / f"{name}.min.js" for name in PACKAGES]
    if all(path.is_file() for path in wanted):
        return wanted
    if shutil.which("npm") is None:
        sys.exit("error: npm is needed once to fetch vega's JavaScript; install Node.js")
    CACHE.mkdir(parents=True, exist_ok=True)
    specs = [f"{name}@{version}" for name, version in PACKAGES.items()]
    subprocess.run(["npm", "pack", "--silent", *specs], cwd=CACHE, check=True, capture_output=True)
    for name, version in PACKAGES.items():
        with tarfile.open(CACHE / f"{name}-{version}.tgz") as archive:
            member = archive.extractfile(f"package/build/{name}.min.js")
            assert member is not None
            (CACHE / f"{name}.min.js").write_bytes(member.read())
    return wanted


def render(output_dir: Path, diff: list[str] | None) -> Path:
    scripts = vega_scripts()
    template = CACHE / "template.html"
    template.write_text(TEMPLATE, encoding="utf-8")
    command = ["dvc", "plots", "diff", *diff] if diff else ["dvc", "plots", "show"]
    command += ["--html-template", str(template), "-o", str(output_dir)]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"error: {' '.join(command)} failed: {result.stderr.strip()}")
    for script in scripts:
        shutil.copy2(script, output_dir / script.name)
    return output_dir / "index.html"


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    sys.exit("error: no Chromium found; on Debian: apt-get install chromium")


def screenshot(page: Path, png: Path, width: int = 1400, height: int = 2400) -> None:
    profile = png.parent / ".chromium-profile"
    subprocess.run(
        [
            chromium(),
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            f"--window-size={width},{height}",
            f"--screenshot={png}",
            page.resolve().as_uri(),
        ],
        check=True,
        capture_output=True,
    )
    shutil.rmtree(profile, ignore_errors=True)


def rendered_dom(page: Path) -> str:
    """The page's DOM after its scripts ran: rendered plots show up as vega's <canvas>/<svg>."""
    profile = page.parent / ".chromium-profile-dom"
    result = subprocess.run(
        [
            chromium(),
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            "--dump-dom",
            page.resolve().as_uri(),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    shutil.rmtree(profile, ignore_errors=True)
    return result.stdout


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--output-dir", type=Path, default=REPO / "plots")
    parser.add_argument(
        "--diff", nargs="+", metavar="REV", help="compare revisions (dvc plots diff)"
    )
    parser.add_argument("--screenshot", type=Path, help="write a PNG of the page")
    args = parser.parse_args()
    page = render(args.output_dir.resolve(), args.diff)
    print(f"plots: {page}")
    if args.screenshot:
        screenshot(page, args.screenshot.resolve())
        print(f"screenshot: {args.screenshot}")


if __name__ == "__main__":
    main()
