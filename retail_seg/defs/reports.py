"""Reports: the figures and the HTML report a marketer reads."""

import dagster as dg
from dagster_duckdb import DuckDBResource

from retail_seg.core.figures import cluster_scatter, elbow_curve, segment_revenue, segment_sizes
from retail_seg.core.report import render_report
from retail_seg.core.warehouse import (
    CUSTOMER_FEATURES,
    CUSTOMER_SEGMENTS,
    K_SELECTION,
    SEGMENT_PROFILES,
    read_table,
)
from retail_seg.defs.metadata import save_figure
from retail_seg.defs.resources import ReportsFolder


@dg.asset(
    deps=["segment_profiles", "k_selection"],
    group_name="reports",
    kinds={"matplotlib", "html"},
    code_version="1",
)
def segment_report(warehouse: DuckDBResource, reports: ReportsFolder) -> dg.MaterializeResult:
    """The HTML report (index.html) with the elbow curve, cluster scatter, segment sizes and revenue."""
    with warehouse.get_connection() as conn:
        features = read_table(conn, CUSTOMER_FEATURES)
        segments = read_table(conn, CUSTOMER_SEGMENTS, ["customer_id", "segment"])
        profiles = read_table(conn, SEGMENT_PROFILES).sort_values("cluster")
        k_table = read_table(conn, K_SELECTION)
    chosen_k = int(k_table.loc[k_table["chosen"], "k"].iloc[0])
    placed = features.merge(segments, on="customer_id", validate="one_to_one")
    figures = {
        "elbow_curve": ("Elbow method: inertia and silhouette by k", elbow_curve(k_table, chosen_k)),
        "cluster_scatter": (
            "Customers by recency, frequency and spend",
            cluster_scatter(placed, placed["segment"]),
        ),
        "segment_sizes": ("Customers per segment", segment_sizes(profiles)),
        "segment_revenue": ("Share of net revenue by segment", segment_revenue(profiles)),
    }
    folder = reports.prepare()
    metadata: dict[str, object] = {}
    captions: dict[str, str] = {}
    for name, (caption, fig) in figures.items():
        path, inline = save_figure(fig, folder, name)
        metadata[name] = inline
        captions[caption] = path.name
    facts = {
        "as-of date": str(features["as_of"].max().date()) if len(features) else "n/a",
        "customers segmented": f"{len(placed):,}",
        "clusters (k, by elbow)": chosen_k,
        "silhouette at k": f"{k_table.loc[k_table['chosen'], 'silhouette'].iloc[0]:.3f}",
    }
    page = folder / "index.html"
    page.write_text(render_report(facts, profiles, captions), encoding="utf-8")
    return dg.MaterializeResult(metadata={**metadata, "report": dg.MetadataValue.path(str(page))})
