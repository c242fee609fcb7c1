"""Open a report in headless Chromium: screenshot it and check that every figure rendered cleanly.

Two Chromium runs, each with a fresh profile folder and the network cut off (any fetch fails, so a
report that is not self-contained shows up as an error):

1. ``--dump-dom`` on a copy of the report with a small probe script injected at the top of
   ``<head>``. The probe records uncaught errors, unhandled promise rejections and
   ``console.error`` calls; after load it counts the plotly figures that rendered
   (``.js-plotly-plot`` with an ``svg.main-svg``), applies every dropdown button and slider step
   of every figure (as a click would), counts again, and writes a JSON summary into the DOM.
2. ``--screenshot`` of the unmodified report at that height, with ``--enable-logging=stderr
   --v=0``; console lines with ``Uncaught`` or ``Error`` are counted as errors too.

Usage::

    python benchmarks/check_report_browser.py REPORT.html [--screenshot OUT.png] [--chromium PATH]

Without ``REPORT.html`` it writes a fresh report to ``runs/browser_check/report.html`` first.
Prints one JSON line; exit 0 when every figure rendered and no error was seen, 1 otherwise,
2 on bad input (no Chromium, no report).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

# Flags from the project brief: headless, no sandbox (root in a container), nothing fetched in the
# background, a fresh profile each run. The host-resolver rule makes every network lookup fail.
BASE_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--host-resolver-rules=MAP * ~NOTFOUND",
)

PROBE_ID = "__specdec_probe"
# Injected at the top of <head> of a copy of the report. Records errors, then after load applies
# every dropdown button and slider step of every figure as a click would (Plotly[method](gd,
# ...args)), and writes a JSON summary into the DOM for --dump-dom to carry out.
PROBE = """<script>
(function () {
  var errs = [];
  window.addEventListener('error', function (e) {
    errs.push('uncaught: ' + (e.message || e.type) +
              (e.filename ? ' at ' + e.filename + ':' + e.lineno : ''));
  }, true);
  window.addEventListener('unhandledrejection', function (e) {
    errs.push('unhandled rejection: ' + String(e.reason));
  });
  var ce = console.error;
  console.error = function () {
    errs.push('console.error: ' + Array.prototype.map.call(arguments, String).join(' '));
    return ce.apply(console, arguments);
  };
  function rendered(plots) {
    return plots.filter(function (p) { return p.querySelector('svg.main-svg'); }).length;
  }
  async function exercise(plots) {
    var n = 0;
    for (const gd of plots) {
      var lay = gd.layout || {}, controls = [];
      (lay.updatemenus || []).forEach(function (m) { controls = controls.concat(m.buttons || []); });
      (lay.sliders || []).forEach(function (s) { controls = controls.concat(s.steps || []); });
      for (const c of controls) {
        if (!c.method || c.method === 'skip' || !window.Plotly[c.method]) continue;
        try { await window.Plotly[c.method].apply(null, [gd].concat(c.args || [])); n++; }
        catch (e) { errs.push('control ' + c.label + ': ' + e); }
      }
    }
    return n;
  }
  window.addEventListener('load', function () {
    setTimeout(async function () {
      var plots = Array.from(document.querySelectorAll('.js-plotly-plot'));
      var ok = rendered(plots);
      var n = await exercise(plots);
      var d = document.createElement('pre');
      d.id = '__PROBE_ID__';
      d.style.display = 'none';
      d.textContent = JSON.stringify({
        errors: errs, plotly_divs: plots.length, rendered: ok,
        rendered_after_controls: rendered(plots), controls_exercised: n,
        main_svgs: document.querySelectorAll('svg.main-svg').length,
        height: document.documentElement.scrollHeight,
        plotly_version: (window.Plotly && window.Plotly.version) || null
      });
      document.body.appendChild(d);
    }, 1500);
  });
})();
</script>""".replace("__PROBE_ID__", PROBE_ID)


def find_chromium(explicit: str | None) -> str:
    if explicit:
        if shutil.which(explicit) is None and not Path(explicit).is_file():
            raise ValueError(f"--chromium {explicit!r} is not an executable.")
        return explicit
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    raise ValueError(
        "no Chromium found (tried " + ", ".join(CHROMIUM_NAMES) + "); on Debian: "
        "apt-get install -y chromium"
    )


def _run(
    chromium: str, extra: list[str], url: str, timeout_s: float
) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="specdec-chromium-") as profile:
        cmd = [chromium, *BASE_FLAGS, f"--user-data-dir={profile}", *extra, url]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)


def console_lines(stderr: str) -> list[str]:
    """The page's console messages from Chromium's stderr log (``INFO:CONSOLE...] "msg"``)."""
    return [m.group(1) for m in re.finditer(r":CONSOLE[^\]]*\] (\".*)$", stderr, re.MULTILINE)]


def expected_figures(html_text: str) -> int:
    return len(re.findall(r'class="plotly-graph-div"', html_text))


def external_resources(html_text: str) -> list[str]:
    """``src``/``href`` attributes of scripts, styles and images that point off the file."""
    hits = re.findall(
        r"<(?:script|link|img|iframe)\b[^>]*?\b(?:src|href)\s*=\s*[\"']((?:https?:)?//[^\"']+)",
        html_text,
        re.IGNORECASE,
    )
    return sorted(set(hits))


def check_report(
    report: Path,
    *,
    screenshot: Path,
    chromium: str | None = None,
    width: int = 1280,
    max_height: int = 16000,
    timeout_s: float = 180.0,
) -> dict:
    """Run both Chromium passes over ``report``; return the summary (see the module docstring)."""
    if not report.is_file():
        raise ValueError(f"report {str(report)!r} does not exist.")
    exe = find_chromium(chromium)
    start = time.perf_counter()
    text = report.read_text(encoding="utf-8")
    version = subprocess.run([exe, "--version"], capture_output=True, text=True, check=False)
    with tempfile.TemporaryDirectory(prefix="specdec-report-probe-") as tmp:
        probed = Path(tmp) / report.name
        probed.write_text(text.replace("<head>", "<head>" + PROBE, 1), encoding="utf-8")
        dom = _run(
            exe,
            ["--dump-dom", "--virtual-time-budget=20000", f"--window-size={width},1200"],
            probed.resolve().as_uri(),
            timeout_s,
        )
    match = re.search(rf'<pre id="{PROBE_ID}"[^>]*>(.*?)</pre>', dom.stdout, re.DOTALL)
    if match:
        import html as _html

        probe = json.loads(_html.unescape(match.group(1)))
    else:
        probe = {"errors": ["the probe did not run (page did not load?)"], "rendered": 0}
    height = int(min(max(probe.get("height") or 2000, 600), max_height))
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    shot = _run(
        exe,
        [
            f"--screenshot={screenshot.resolve()}",
            f"--window-size={width},{height}",
            "--virtual-time-budget=20000",
            "--enable-logging=stderr",
            "--v=0",
        ],
        report.resolve().as_uri(),
        timeout_s,
    )
    console = console_lines(shot.stderr)
    console_errors = [c for c in console if re.search(r"Uncaught|Error|Failed", c)]
    expected = expected_figures(text)
    external = external_resources(text)
    errors = list(probe.get("errors", [])) + console_errors
    ok = (
        screenshot.is_file()
        and expected > 0
        and probe.get("rendered") == expected
        and probe.get("rendered_after_controls") == expected
        and not errors
        and not external
    )
    return {
        "ok": bool(ok),
        "report": str(report),
        "report_bytes": len(text.encode("utf-8")),
        "screenshot": str(screenshot),
        "screenshot_height_px": height,
        "figures_expected": expected,
        "figures_rendered": probe.get("rendered"),
        "main_svgs": probe.get("main_svgs"),
        "controls_exercised": probe.get("controls_exercised"),
        "plotly_js_version": probe.get("plotly_version"),
        "errors": errors,
        "console_messages": len(console),
        "external_resources": external,
        "chromium": version.stdout.strip(),
        "seconds": round(time.perf_counter() - start, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", nargs="?", help="the HTML report (default: write a fresh one)")
    parser.add_argument("--screenshot", help="PNG to write (default: next to the report)")
    parser.add_argument("--chromium", help="Chromium executable (default: found on PATH)")
    parser.add_argument("--width", type=int, default=1280, help="window width, px")
    args = parser.parse_args(argv)
    try:
        if args.report is None:
            from explorer.report import write_report

            report = Path("runs/browser_check/report.html")
            write_report(report)
        else:
            report = Path(args.report)
        shot = Path(args.screenshot) if args.screenshot else report.with_suffix(".png")
        result = check_report(report, screenshot=shot, chromium=args.chromium, width=args.width)
    except (ValueError, subprocess.TimeoutExpired) as exc:
        sys.stderr.write(f"check_report_browser: error: {exc}\n")
        return 2
    sys.stdout.write(json.dumps(result) + "\n")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
