"""The HTML report: key numbers, tables and figures in one self-contained page a marketer can read."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd

from retail_seg.core.cleaning import rejected_by_rule
from retail_seg.core.segmentation import segments_by_rfm_segment
from retail_seg.core.tables import (
    CUSTOMER_FEATURES,
    CUSTOMER_SEGMENTS,
    EDA_SUMMARY,
    METHOD_COMPARISON,
    PREPROCESSING_STEPS,
    SEGMENT_PROFILES,
)
from retail_seg.core.warehouse import read_figures, read_table

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1250px; padding: 0 1rem; }
body { color: #222; } .scroll { overflow-x: auto; }
h1 { margin-bottom: 0.2rem; } .lede { color: #555; margin-top: 0; }
table { border-collapse: collapse; font-size: 0.85rem; margin: 1rem 0; }
th, td { border: 1px solid #ccc; padding: 0.3rem 0.6rem; text-align: right; vertical-align: top; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
td.text, th.text { text-align: left; }
figure { margin: 1.5rem 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9rem; }
"""


@dataclass(frozen=True)
class Table:
    """A table for the report, with the columns renamed for readers and shares shown as percentages."""

    caption: str
    frame: pd.DataFrame
    percent: tuple[str, ...] = ()


@dataclass(frozen=True)
class Image:
    """A figure saved beside the page."""

    caption: str
    path: str


@dataclass(frozen=True)
class Section:
    """A heading, a sentence or two, and its tables and figures."""

    heading: str
    blocks: list[Table | Image] = field(default_factory=list)
    text: str = ""


def _table(block: Table) -> str:
    frame = block.frame
    text = [c for c in frame if frame[c].dtype == object]
    # One formatter per column: shares as percentages, whole numbers with separators, the rest to 2 places.
    formats = {
        c: "{:.1%}"
        if c in block.percent
        else "{:,.0f}"
        if pd.api.types.is_integer_dtype(frame[c])
        else "{:,.2f}"
        for c in frame
        if c not in text
        and pd.api.types.is_numeric_dtype(frame[c])
        and not pd.api.types.is_bool_dtype(frame[c])
    }
    styled = (
        frame.style.hide(axis="index")
        .format(formats, na_rep="–")
        .set_properties(subset=text, **{"text-align": "left"})
    )
    return f"<p><strong>{html.escape(block.caption)}</strong></p><div class='scroll'>{styled.to_html()}</div>"


def _image(block: Image) -> str:
    return (
        f'<figure><img src="{html.escape(block.path)}" alt="{html.escape(block.caption)}">'
        f"<figcaption>{html.escape(block.caption)}</figcaption></figure>"
    )


def render_report(title: str, lede: str, facts: dict[str, object], sections: list[Section]) -> str:
    """The report page."""
    rows = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td class='text'>{html.escape(str(v))}</td></tr>"
        for k, v in facts.items()
    )
    parts = []
    for section in sections:
        blocks = "".join(_table(b) if isinstance(b, Table) else _image(b) for b in section.blocks)
        text = f"<p>{html.escape(section.text)}</p>" if section.text else ""
        parts.append(f"<h2>{html.escape(section.heading)}</h2>{text}{blocks}")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title><style>{_STYLE}</style></head>
<body>
<h1>{html.escape(title)}</h1>
<p class="lede">{html.escape(lede)}</p>
<table>{rows}</table>
{"".join(parts)}
</body></html>
"""


LEDE = "Every customer with a purchase, clustered on how they buy, with what to do for each segment."
PROFILE_COLUMNS = {
    "segment": "segment",
    "customers": "customers",
    "customer_share": "customer share",
    "revenue_share": "revenue share",
    "median_recency_days": "median recency (days)",
    "median_frequency": "median invoices",
    "median_monetary": "median net spend",
    "mean_avg_order_value": "mean order value",
    "mean_return_rate": "mean return rate",
    "mean_age": "mean age",
    "female_share": "female share",
    "top_rfm_segment": "most common RFM segment",
    "recommendation": "recommendation",
}


@dataclass(frozen=True)
class ReportPage:
    """The report: its HTML and the figures it shows, by file name."""

    html: str
    figures: dict[str, bytes]

    def write(self, folder: Path) -> Path:
        """Write the page and its figures into `folder`, and no figure of an earlier page; return the page."""
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("*.png"):
            if stale.name not in self.figures:
                stale.unlink()
        for name, png in self.figures.items():
            (folder / name).write_bytes(png)
        page = folder / "index.html"
        page.write_text(self.html, encoding="utf-8")
        return page


def build_segment_report(conn: duckdb.DuckDBPyConnection, figure_assets: list[str]) -> ReportPage:
    """The report over the published marts, showing the figures the assets in `figure_assets` drew."""
    profiles = read_table(conn, SEGMENT_PROFILES).sort_values("cluster")
    comparison = read_table(conn, METHOD_COMPARISON)
    segments = read_table(conn, CUSTOMER_SEGMENTS, ["segment", "rfm_segment", "k"])
    eda = read_table(conn, EDA_SUMMARY)
    statistics = eda.pivot_table(index=["grain", "variable"], columns="statistic", values="value", sort=False)
    [(as_of, customers)] = conn.execute(f"SELECT max(as_of), count(*) FROM {CUSTOMER_FEATURES}").fetchall()
    figures = {name: (caption, png) for name, caption, png in read_figures(conn, figure_assets)}
    facts, sections = segment_report_contents(
        profiles,
        comparison,
        segments_by_rfm_segment(segments, profiles["segment"].tolist()),
        read_table(conn, PREPROCESSING_STEPS),
        statistics.reset_index(),
        rejected_by_rule(conn),
        {name: Image(caption, f"{name}.png") for name, (caption, _) in figures.items()},
        as_of=str(as_of),
        customers=customers,
        k=int(segments["k"].iloc[0]),
    )
    return ReportPage(
        render_report("Customer segments", LEDE, facts, sections),
        {f"{name}.png": png for name, (_, png) in figures.items()},
    )


def segment_report_contents(
    profiles: pd.DataFrame,
    comparison: pd.DataFrame,
    crosstab: pd.DataFrame,
    steps: pd.DataFrame,
    statistics: pd.DataFrame,
    rejected: pd.DataFrame,
    images: dict[str, Image],
    as_of: str,
    customers: int,
    k: int,
) -> tuple[dict[str, object], list[Section]]:
    """The segmentation report's key facts and sections, in reading order; absent figures are skipped."""
    published = comparison[comparison["selected"]].iloc[0]
    facts = {
        "as-of date": as_of,
        "customers segmented": f"{customers:,}",
        "clusters k": f"{k} (elbow of K-Means inertia, found by knee detection)",
        "published method": f"{published['method']}: {published['reason']}",
        "agreement of K-Means and Ward": f"adjusted Rand index {published['adjusted_rand_vs_other']:.3f}",
    }

    def shown(*names: str) -> list[Image]:
        return [images[n] for n in names if n in images]

    profile_table = profiles[[c for c in PROFILE_COLUMNS if c in profiles]].rename(columns=PROFILE_COLUMNS)
    sections = [
        Section(
            "Segments and what to do",
            [
                Table(
                    "One row per segment, highest-spending first",
                    profile_table,
                    ("customer share", "revenue share", "female share", "mean return rate"),
                ),
                *shown("segment_sizes", "segment_revenue", "cluster_scatter", "pca_scatter"),
            ],
        ),
        Section(
            "Choosing k and the method",
            [
                Table("K-Means and Ward at the chosen k", comparison.drop(columns=["reason"])),
                *shown("elbow_curve", "dendrogram"),
            ],
            text="k is where the K-Means inertia curve bends most; both methods are cut at that k, and "
            "the one with the higher silhouette is published unless configured otherwise.",
        ),
        Section(
            "Segments against the named RFM segments",
            [
                Table("Customers per segment (rows) and RFM segment (columns)", crosstab),
                *shown("rfm_heatmap"),
            ],
        ),
        Section("Preprocessing", [Table("What each model feature went through", steps)]),
        Section(
            "Exploratory analysis",
            [
                Table("Summary statistics", statistics),
                *shown("eda_histograms", "monthly_revenue", "spend_by_age_band", "spend_by_gender"),
            ],
        ),
        Section("Data quality", [Table("Lines rejected by staging, by rule", rejected)]),
        Section(
            "Movement since the previous run",
            shown("segment_migration"),
            text="Customers in both runs, by their segment then (rows) and now (columns).",
        ),
    ]
    sections = [s for s in sections if s.blocks]
    return facts, sections
