"""The HTML report: key numbers, the figures and the segment profile table, in one self-contained page."""

from __future__ import annotations

import html

import pandas as pd

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }
h1 { margin-bottom: 0.2rem; } .lede { color: #555; margin-top: 0; }
table { border-collapse: collapse; font-size: 0.9rem; margin: 1rem 0; }
th, td { border: 1px solid #ccc; padding: 0.3rem 0.6rem; text-align: right; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
figure { margin: 1.5rem 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9rem; }
"""

PROFILE_COLUMNS = {
    "segment": "segment",
    "customers": "customers",
    "customer_share": "customer share",
    "revenue_share": "revenue share",
    "median_recency_days": "median recency (days)",
    "median_frequency": "median invoices",
    "median_monetary": "median net spend",
    "mean_age": "mean age",
    "female_share": "female share",
    "recommendation": "recommendation",
}


def _facts_table(facts: dict[str, object]) -> str:
    rows = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in facts.items()
    )
    return f"<table>{rows}</table>"


def render_report(facts: dict[str, object], profiles: pd.DataFrame, figures: dict[str, str]) -> str:
    """The report page. `figures` maps a caption to an image path relative to the page."""
    shown = profiles[[c for c in PROFILE_COLUMNS if c in profiles]].rename(columns=PROFILE_COLUMNS)
    percent = [c for c in ("customer share", "revenue share", "female share") if c in shown]
    formatters = {c: "{:.1%}".format for c in percent}
    table = shown.to_html(index=False, formatters=formatters, float_format="{:,.2f}".format, escape=True)
    images = "".join(
        f'<figure><img src="{html.escape(path)}" alt="{html.escape(caption)}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        for caption, path in figures.items()
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Customer segments</title><style>{_STYLE}</style></head>
<body>
<h1>Customer segments</h1>
<p class="lede">Every customer with a purchase, clustered on recency, frequency and net spend.</p>
{_facts_table(facts)}
<h2>Segments</h2>
{table}
<h2>Figures</h2>
{images}
</body></html>
"""
