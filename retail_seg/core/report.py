"""The HTML report: one self-contained page a marketer can forward, figures embedded.

It opens with what was run (run id, source, as-of and generation time), a table of contents and the key
decisions, then the segments with their numbers and recommendations, value and churn, movement since the
last run, the analysis, and the method details in an appendix.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import re
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd

from retail_seg.core.audit import history_lineage
from retail_seg.core.cleaning import rejected_by_rule
from retail_seg.core.customer_tables import history_grain
from retail_seg.core.features import ENGINEERED_COLUMNS, RFM_COLUMNS
from retail_seg.core.lifetime import NO_HISTORY
from retail_seg.core.segmentation import segments_by_rfm_segment
from retail_seg.core.tables import (
    CUSTOMER_FEATURES,
    CUSTOMER_SEGMENTS,
    EDA_SUMMARY,
    K_SELECTION,
    METHOD_COMPARISON,
    PREPROCESSING_STEPS,
    SEGMENT_DRIFT,
    SEGMENT_MIGRATION,
    SEGMENT_PROFILES,
    VALUE_MODELS,
)
from retail_seg.core.warehouse import exists, read_figures, read_table

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1250px; padding: 0 1rem; }
body { color: #222; }
h1 { margin-bottom: 0.2rem; } .lede { color: #555; margin-top: 0; }
h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2rem; margin-top: 2.5rem; }
table { border-collapse: collapse; font-size: 0.85rem; margin: 1rem 0; max-width: 100%; }
th, td { border: 1px solid #ccc; padding: 0.3rem 0.6rem; text-align: right; vertical-align: top; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
td.text, th.text { text-align: left; }
figure { margin: 1.5rem 0; } figure img { width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9rem; }
nav ol { columns: 2; } .segment { margin: 1rem 0; padding: 0.6rem 1rem; background: #f8f8f8; }
.segment h3 { margin: 0 0 0.3rem 0; } .note { color: #555; font-size: 0.9rem; }
"""


@dataclass(frozen=True)
class Table:
    """A table for the report: columns renamed for readers, shares as percentages, money in the currency."""

    caption: str
    frame: pd.DataFrame
    percent: tuple[str, ...] = ()
    money: tuple[str, ...] = ()


@dataclass(frozen=True)
class Image:
    """A figure, embedded in the page."""

    caption: str
    png: bytes


@dataclass(frozen=True)
class Text:
    """A paragraph, or a titled box (one per segment)."""

    body: str
    title: str = ""


Block = Table | Image | Text


@dataclass(frozen=True)
class Section:
    """A heading, a sentence or two, and its blocks."""

    heading: str
    blocks: list[Block] = field(default_factory=list)
    text: str = ""

    @property
    def anchor(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.heading.lower()).strip("-")


def informative(frame: pd.DataFrame, keep: tuple[str, ...] = ()) -> pd.DataFrame:
    """The columns of `frame` that tell rows apart: one holding the same value in every row says nothing
    (a return rate identical for every segment), so it is dropped, unless named in `keep`."""
    if len(frame) < 2:
        return frame
    return frame[[c for c in frame if c in keep or frame[c].astype(str).nunique(dropna=False) > 1]]


def _whole(series: pd.Series) -> bool:
    values = series.dropna()
    return bool(len(values)) and bool((values == values.round()).all())


def _readable(value: float) -> str:
    """A number to at most two places, without the zeros a reader would drop: 6, 12.5, 45.1, 3.14."""
    text = f"{value:,.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _formats(block: Table, currency: str) -> dict[str, object]:
    """One formatter per numeric column: shares as percentages, whole numbers (integers, and medians of
    counts) without decimals, money with separators and the currency, the rest to at most 2 places (a
    median of days is 84, or 433.5, never 84.00)."""
    frame, formats = block.frame, {}
    for column in frame:
        if not pd.api.types.is_numeric_dtype(frame[column]) or pd.api.types.is_bool_dtype(frame[column]):
            continue
        if column in block.percent:
            formats[column] = "{:.1%}"
        elif column in block.money:
            formats[column] = (f"{currency} " if currency else "") + "{:,.0f}"
        elif pd.api.types.is_integer_dtype(frame[column]) or _whole(frame[column]):
            formats[column] = "{:,.0f}"
        else:
            formats[column] = _readable
    return formats


def _table(block: Table, currency: str) -> str:
    frame = block.frame
    text = [c for c in frame if frame[c].dtype == object]
    styled = (
        frame.style.hide(axis="index")
        .format(_formats(block, currency), na_rep="–")
        .set_properties(subset=text, **{"text-align": "left"})
    )
    return f"<p><strong>{html.escape(block.caption)}</strong></p>{styled.to_html()}"


def _image(block: Image) -> str:
    data = base64.b64encode(block.png).decode("ascii")
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(block.caption)}">'
        f"<figcaption>{html.escape(block.caption)}</figcaption></figure>"
    )


def _text(block: Text) -> str:
    if block.title:
        return (
            f"<div class='segment'><h3>{html.escape(block.title)}</h3><p>{html.escape(block.body)}</p></div>"
        )
    return f"<p class='note'>{html.escape(block.body)}</p>"


def _block(block: Block, currency: str) -> str:
    if isinstance(block, Table):
        return _table(block, currency)
    return _image(block) if isinstance(block, Image) else _text(block)


def render_report(
    title: str, lede: str, facts: dict[str, object], sections: list[Section], currency: str = ""
) -> str:
    """The report page: facts, a table of contents, and the sections; every figure embedded."""
    rows = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td class='text'>{html.escape(str(v))}</td></tr>"
        for k, v in facts.items()
    )
    contents = "".join(f"<li><a href='#{s.anchor}'>{html.escape(s.heading)}</a></li>" for s in sections)
    parts = []
    for section in sections:
        blocks = "".join(_block(b, currency) for b in section.blocks)
        text = f"<p>{html.escape(section.text)}</p>" if section.text else ""
        parts.append(f"<h2 id='{section.anchor}'>{html.escape(section.heading)}</h2>{text}{blocks}")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{html.escape(title)}</title><style>{_STYLE}</style></head>
<body>
<h1>{html.escape(title)}</h1>
<p class="lede">{html.escape(lede)}</p>
<table>{rows}</table>
<nav><strong>Contents</strong><ol>{contents}</ol></nav>
{"".join(parts)}
</body></html>
"""


LEDE = "Every customer with a purchase, clustered on how they buy, with what to do for each segment."
PROFILE_COLUMNS = {
    "segment": "segment",
    "customers": "customers",
    "customer_share": "customer share",
    "revenue_share": "revenue share",
    "revenue": "net spend",
    "median_recency_days": "median recency (days)",
    "median_frequency": "median invoices",
    "median_monetary": "median net spend",
    "mean_avg_order_value": "mean order value",
    "mean_return_rate": "mean return rate",
    "mean_age": "mean age",
    "female_share": "female share",
    "top_rfm_segment": "most common RFM segment",
}
VALUE_COLUMNS = {
    "segment": "segment",
    "customers": "customers",
    "mean_p_alive": "mean probability active",
    "expected_value": "expected value, next 12 months",
    "value_at_risk": "past spend at risk of churn",
}
MONEY = (
    "net spend",
    "median net spend",
    "mean order value",
    "expected value, next 12 months",
    "past spend at risk of churn",
)
PERCENT = ("customer share", "revenue share", "female share", "mean return rate", "mean probability active")


@dataclass(frozen=True)
class ReportPage:
    """The report: one HTML page with its figures embedded."""

    html: str
    figures: int

    def write(self, folder: Path) -> Path:
        """Write the page into `folder`, removing the figure files earlier reports kept beside it."""
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("*.png"):
            stale.unlink()
        page = folder / "index.html"
        page.write_text(self.html, encoding="utf-8")
        return page


@dataclass(frozen=True)
class RunFacts:
    """What the report says about the run it describes."""

    run_id: str
    generated_at: dt.datetime
    currency: str = ""


def build_segment_report(
    conn: duckdb.DuckDBPyConnection, figure_assets: list[str], run: RunFacts
) -> ReportPage:
    """The report over the published marts, showing the figures the assets in `figure_assets` drew."""
    profiles = read_table(conn, SEGMENT_PROFILES).sort_values("cluster")
    comparison = read_table(conn, METHOD_COMPARISON)
    segments = read_table(conn, CUSTOMER_SEGMENTS, ["segment", "rfm_segment", "k"])
    eda = read_table(conn, EDA_SUMMARY)
    statistics = eda.pivot_table(index=["grain", "variable"], columns="statistic", values="value", sort=False)
    [(as_of, customers)] = conn.execute(f"SELECT max(as_of), count(*) FROM {CUSTOMER_FEATURES}").fetchall()
    source, digest = history_lineage(conn)
    figures = {name: Image(caption, bytes(png)) for name, caption, png in read_figures(conn, figure_assets)}
    migration = read_table(conn, SEGMENT_MIGRATION) if exists(conn, SEGMENT_MIGRATION) else None
    models = read_table(conn, VALUE_MODELS) if exists(conn, VALUE_MODELS) else None
    sweep = read_table(conn, K_SELECTION)
    facts = {
        "run": run.run_id,
        "source": source or "unknown",
        "source checksum (SHA-256)": digest or "unknown",
        "as-of date": str(as_of),
        "generated": run.generated_at.strftime("%Y-%m-%d %H:%M UTC"),
        "customers segmented": f"{customers:,}",
    }
    sections = segment_report_sections(
        profiles,
        comparison,
        segments_by_rfm_segment(segments, profiles["segment"].tolist()),
        read_table(conn, PREPROCESSING_STEPS),
        statistics.reset_index(),
        rejected_by_rule(conn),
        figures,
        sweep=sweep,
        migration=migration,
        models=models,
        drift=read_table(conn, SEGMENT_DRIFT) if exists(conn, SEGMENT_DRIFT) else None,
        no_value=NO_HISTORY if history_grain(conn) == "customers" else "",
    )
    page = render_report("Customer segments", LEDE, facts, sections, run.currency)
    return ReportPage(page, sum(isinstance(b, Image) for s in sections for b in s.blocks))


def declared_medians(profiles: pd.DataFrame) -> list[str]:
    """The medians of a customer table's own features in the profiles (income, spending score...)."""
    known = {f"median_{c}" for c in (*RFM_COLUMNS, *ENGINEERED_COLUMNS, "distinct_products")}
    return [c for c in profiles if c.startswith("median_") and c not in known]


def _value_note(models: pd.DataFrame) -> Text:
    """How the value columns were computed: the fitted parameters and the settings, in words."""
    fitted = {
        model: ", ".join(
            f"{name} = {value:.3g}" for name, value in zip(g["parameter"], g["value"], strict=True)
        )
        for model, g in models[models["model"] != "settings"].groupby("model")
    }
    settings = models[models["model"] == "settings"].set_index("parameter")["value"]
    months, rate, margin = (
        settings.get(k, d)
        for k, d in (("lifetime_months", 12), ("annual_discount_rate", 0.1), ("margin", 1.0))
    )
    return Text(
        f"BG/NBD ({fitted.get('bgnbd', '')}) gives each customer's probability of still being active "
        f"and expected purchases; Gamma-Gamma ({fitted.get('gamma_gamma', '')}) their expected spend per "
        f"purchase. Lifetime value sums {months:.0f} months of expected purchases at that spend, discounted "
        f"at {rate:.0%} a year, times a margin of {margin:.0%}. BG/NBD assumes a customer who never bought "
        "again has not dropped out: their risk shows in recency and expected purchases, not in p_alive."
    )


def _migration_grid(migration: pd.DataFrame, order: list[str]) -> pd.DataFrame:
    """Customers by segment then (rows) and now (columns), each named by its stable id and its name."""
    migration = migration.assign(
        from_segment=migration["from_segment_id"].astype(str) + " " + migration["from_segment"].astype(str),
        to_segment=migration["to_segment_id"].astype(str) + " " + migration["to_segment"].astype(str),
    )
    grid = migration.pivot_table(
        index="from_segment", columns="to_segment", values="customers", aggfunc="sum", fill_value=0
    )
    rows = [s for s in order if s in grid.index] + [s for s in grid.index if s not in order]
    columns = [s for s in order if s in grid.columns] + [s for s in grid.columns if s not in order]
    return grid.loc[rows, columns].rename_axis(index="then \\ now", columns=None).reset_index()


def segment_report_sections(
    profiles: pd.DataFrame,
    comparison: pd.DataFrame,
    crosstab: pd.DataFrame,
    steps: pd.DataFrame,
    statistics: pd.DataFrame,
    rejected: pd.DataFrame,
    images: dict[str, Image],
    sweep: pd.DataFrame | None = None,
    migration: pd.DataFrame | None = None,
    models: pd.DataFrame | None = None,
    drift: pd.DataFrame | None = None,
    no_value: str = "",
) -> list[Section]:
    """The report's sections, in reading order; absent figures and empty sections are skipped."""
    published = comparison[comparison["selected"]].iloc[0]

    def shown(*names: str) -> list[Image]:
        return [images[n] for n in names if n in images]

    order = (profiles["segment_id"] + " " + profiles["segment"]).tolist()
    # Beside the usual numbers, what a customer table declares: its features' medians, its categories'
    # and bands' most common values.
    described = {
        **PROFILE_COLUMNS,
        **{c: c.replace("_", " ") for c in profiles if c.startswith("top_") and c not in PROFILE_COLUMNS},
        **{c: c.replace("_", " ") for c in declared_medians(profiles)},
    }
    numbers = informative(
        profiles[[c for c in described if c in profiles]].rename(columns=described),
        keep=("segment", "customers"),
    ).dropna(axis=1, how="all")
    decisions = [
        Text(f"Clusters: {published['k_reason'] if 'k_reason' in published else published['k']}.", "k"),
        Text(f"{published['method']}: {published['reason']}.", "Method"),
        Text(
            f"K-Means and Ward agree at adjusted Rand index {published['adjusted_rand_vs_other']:.3f} "
            "(1 means the same clustering).",
            "Agreement",
        ),
    ]
    sections = [
        Section("Key decisions", decisions),
        Section(
            "Segments and what to do",
            [
                Table("One row per segment, highest-spending first", numbers, PERCENT, MONEY),
                *(Text(r.recommendation, r.segment) for r in profiles.itertuples()),
                *shown("segment_sizes", "segment_revenue", "cluster_scatter", "pca_scatter"),
            ],
        ),
    ]
    if "mean_p_alive" in profiles and profiles["mean_p_alive"].isna().all():
        why = no_value or (
            "the history has too few repeat buyers for BG/NBD and Gamma-Gamma (customer_value's metadata "
            "says how many)"
        )
        sections.append(Section("Value and churn", [Text(f"Not computed: {why}.")]))
    elif "expected_value" in profiles:
        value = profiles[[c for c in VALUE_COLUMNS if c in profiles]].rename(columns=VALUE_COLUMNS)
        blocks: list[Block] = [Table("Value and churn risk per segment", value, PERCENT, MONEY)]
        if models is not None:
            blocks.append(_value_note(models))
        sections.append(Section("Value and churn", blocks))
    if migration is not None and len(migration):
        sections.append(
            Section(
                "Movement since the previous run",
                [
                    Table(
                        f"Customers by segment in run {migration['previous_run'].iloc[0]} (rows) and now",
                        _migration_grid(migration, order),
                    ),
                    *shown("segment_migration"),
                ],
            )
        )
    else:
        sections.append(
            Section(
                "Movement since the previous run", [Text("This is the first recorded run: no movement yet.")]
            )
        )
    if drift is not None and len(drift):
        warned = drift[~drift["passed"].astype(bool)]
        blocks = [Text(words, "Warning") for words in warned["words"]] or [Text("No drift check warned.")]
        shown_drift = drift.assign(result=drift["passed"].map({True: "held", False: "WARNING"}))
        sections.append(
            Section(
                "Drift since the previous run",
                [*blocks, Table("Every drift check", shown_drift[["check", "result", "words"]])],
            )
        )
    sections += [
        Section(
            "Segments against the named RFM segments",
            [
                Table("Customers per segment (rows) and RFM segment (columns)", crosstab),
                *shown("rfm_heatmap"),
            ],
        ),
        Section(
            "Exploratory analysis",
            [
                Table("Summary statistics", statistics),
                *shown("eda_histograms", "monthly_revenue", "spend_by_age_band", "spend_by_gender"),
                # A customer table's categories (education, marital status...), each by its own figure.
                *(
                    image
                    for name, image in images.items()
                    if name.startswith("spend_by_") and name not in ("spend_by_age_band", "spend_by_gender")
                ),
            ],
        ),
        Section(
            "Appendix: choosing k and the method",
            [
                *([Table("K-Means and Ward at every k", sweep)] if sweep is not None else []),
                Table(
                    "K-Means and Ward at the chosen k",
                    comparison.drop(columns=[c for c in ("reason", "k_reason") if c in comparison]),
                ),
                *shown("elbow_curve", "dendrogram"),
            ],
            text="The elbow of the K-Means inertia curve proposes k; silhouette, Calinski–Harabasz and "
            "Davies–Bouldin each name the k they prefer, and a k named by at least two of the four wins "
            "(a tie goes to silhouette's), else the elbow's stands. Both methods are cut at that k, and the "
            "one with the higher silhouette is published unless configured otherwise.",
        ),
        Section("Appendix: preprocessing", [Table("What each model feature went through", steps)]),
        Section("Appendix: data quality", [Table("Lines rejected by staging, by rule", rejected)]),
    ]
    return [s for s in sections if s.blocks]
