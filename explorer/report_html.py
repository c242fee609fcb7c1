"""The report as one self-contained HTML page: styles, navigation, provenance and sections.

plotly.js is inlined once in ``<head>`` (plotly's offline bundle), each figure is a ``<div>``
drawn by a short inline script, tables are pandas HTML, text is escaped. Nothing is fetched when
the page is opened. The sections come from :mod:`explorer.report_sections`.
"""

from __future__ import annotations

import datetime as _dt
import html
import os
import platform
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    import plotly.graph_objects as go

    from explorer.report_sections import Section

__all__ = ["render_html"]

_CSS = """
body { font-family: -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
       max-width: 1100px; margin: 0 auto; padding: 1.5em 2em 4em; color: #222; line-height: 1.5; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 2px solid #ddd; padding-bottom: 0.2em;
       margin-top: 2.2em; }
.meta { color: #666; font-size: 0.9em; }
.missing { background: #fff6e0; border-left: 4px solid #e0a800; padding: 0.6em 1em; }
nav ul { columns: 2; } nav a { text-decoration: none; }
table.data { border-collapse: collapse; font-size: 0.85em; margin: 1em 0; }
table.data th, table.data td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: right; }
table.data th { background: #f4f4f4; }
table.data td { white-space: nowrap; }
table.data td:first-child, table.data th:first-child { text-align: left; }
.figure { margin: 1em 0 1.5em; }
.table-wrap { overflow-x: auto; max-width: 100%; }
dl.defs dt { font-weight: bold; float: left; clear: left; width: 4em; }
dl.defs dd { margin-left: 4.5em; }
"""


def _figure_html(fig: go.Figure, div_id: str) -> str:
    # include_plotlyjs=False: the bundle is inlined once in <head>.
    return fig.to_html(
        full_html=False,
        include_plotlyjs=False,
        div_id=div_id,
        config={"displaylogo": False, "responsive": True},
    )


def _table_html(table: pd.DataFrame) -> str:
    return table.to_html(
        index=False,
        classes="data",
        border=0,
        na_rep="–",
        float_format=lambda v: f"{v:.4g}",
        escape=True,
    )


def _section_html(section: Section) -> str:
    import pandas as pd

    parts = [f'<section id="{section.key}">', f"<h2>{html.escape(section.title)}</h2>"]
    parts.append(f"<p>{html.escape(section.intro)}</p>")
    if section.missing is not None:
        parts.append(f'<p class="missing">No data: {html.escape(section.missing)}</p>')
    n_fig = 0
    for block in section.blocks:
        if isinstance(block, str):
            parts.append(f"<p>{html.escape(block)}</p>")
        elif isinstance(block, tuple) and len(block) == 2 and block[0] == "html":
            parts.append(block[1])
        elif isinstance(block, pd.DataFrame):
            parts.append(f'<div class="table-wrap">{_table_html(block)}</div>')
        else:  # a plotly figure
            n_fig += 1
            div = _figure_html(block, f"fig-{section.key}-{n_fig}")
            parts.append(f'<div class="figure">{div}</div>')
    parts.append("</section>")
    return "\n".join(parts)


def _provenance(inputs: dict[str, str]) -> str:
    import numpy
    import optuna
    import plotly

    rows = [
        ("written", _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")),
        ("machine", f"{platform.node()} ({platform.machine()}, {os.cpu_count()} CPUs)"),
        (
            "software",
            f"python {platform.python_version()}, numpy {numpy.__version__}, optuna "
            f"{optuna.__version__}, plotly {plotly.__version__}",
        ),
        *inputs.items(),
    ]
    items = "".join(f"<li>{html.escape(k)}: {html.escape(str(v))}</li>" for k, v in rows)
    return f'<ul class="meta">{items}</ul>'


def render_html(sections: Sequence[Section], *, title: str, inputs: dict[str, str]) -> str:
    """The whole report as one HTML string, plotly.js inlined once in <head>."""
    from plotly.offline import get_plotlyjs

    nav = "".join(
        f'<li><a href="#{s.key}">{html.escape(s.title)}</a>'
        f"{'' if s.has_data else ' (no data)'}</li>"
        for s in sections
    )
    defs = (
        '<dl class="defs">'
        "<dt>γ</dt><dd>draft tokens proposed per speculative step.</dd>"
        "<dt>α</dt><dd>acceptance rate: probability that a proposal is accepted given that all "
        "before it in the step were.</dd>"
        "<dt>τ</dt><dd>tokens emitted per step (accepted proposals + the target's one), in "
        "[1, γ+1].</dd>"
        "<dt>c</dt><dd>latency ratio T_draft / T_target of one-token passes.</dd>"
        "<dt>speedup</dt><dd>speculative tokens/s divided by plain decoding tokens/s of the "
        "target at the same batch.</dd></dl>"
    )
    body = "\n".join(_section_html(s) for s in sections)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>{_CSS}</style>
<script type="text/javascript">{get_plotlyjs()}</script>
</head>
<body>
<h1>{html.escape(title)}</h1>
<p>Which draft model should be used for speculative decoding on this hardware, what speedup will
it give, and what draft should be trained? This report shows the model's answer (the landscape),
what was measured (latency, the zoo), what the search proposes, and how far predictions were from
real runs. Figures are interactive: hover for values, drag to zoom, double-click to reset.</p>
{defs}
{_provenance(inputs)}
<nav><ul>{nav}</ul></nav>
{body}
</body>
</html>
"""
