"""Reports: the HTML report a marketer reads, with every table and figure of the analysis."""

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

from retail_seg.core.cleaning import rejected_by_rule
from retail_seg.core.figures import (
    cluster_scatter,
    elbow_curve,
    pca_scatter,
    rfm_heatmap,
    segment_revenue,
    segment_sizes,
)
from retail_seg.core.report import LEDE, Image, render_report, segment_report_contents
from retail_seg.core.warehouse import (
    CUSTOMER_FEATURES,
    CUSTOMER_SEGMENTS,
    EDA_SUMMARY,
    K_SELECTION,
    METHOD_COMPARISON,
    MODEL_FEATURES,
    PREPROCESSING_STEPS,
    SEGMENT_PROFILES,
    read_table,
)
from retail_seg.defs.metadata import save_figure
from retail_seg.defs.resources import WAREHOUSE_POOL, ReportsFolder

# Figures drawn by other assets of the same run (segmentation, eda_summary), shown when present.
SAVED_FIGURES = {
    "dendrogram": "Ward dendrogram (top of the tree), cut at the chosen k",
    "eda_histograms": "Distributions of the key variables",
    "monthly_revenue": "Net revenue and active customers by month",
    "spend_by_age_band": "Mean net spend by age band",
    "spend_by_gender": "Mean net spend by gender",
}


@dg.asset(
    deps=["segment_profiles", "method_comparison", "k_selection", "eda_summary"],
    group_name="reports",
    kinds={"matplotlib", "html"},
    code_version="2",
    pool=WAREHOUSE_POOL,
)
def segment_report(warehouse: DuckDBResource, reports: ReportsFolder) -> dg.MaterializeResult:
    """index.html: segments with recommendations, the choice of k and method, RFM grid, EDA, and figures."""
    with warehouse.get_connection() as conn:
        features = read_table(conn, CUSTOMER_FEATURES)
        segments = read_table(conn, CUSTOMER_SEGMENTS)
        profiles = read_table(conn, SEGMENT_PROFILES).sort_values("cluster")
        k_table = read_table(conn, K_SELECTION)
        comparison = read_table(conn, METHOD_COMPARISON)
        model = read_table(conn, MODEL_FEATURES)
        steps = read_table(conn, PREPROCESSING_STEPS)
        eda = read_table(conn, EDA_SUMMARY)
        rejected = rejected_by_rule(conn)
    placed = features.merge(segments[["customer_id", "segment"]], on="customer_id", validate="one_to_one")
    model = model.set_index("customer_id").loc[placed["customer_id"]]
    order = profiles["segment"].tolist()
    chosen_k = int(segments["k"].iloc[0])
    drawn = {
        "cluster_scatter": (
            "Customers by recency, frequency and spend",
            cluster_scatter(placed, placed["segment"], order),
        ),
        "pca_scatter": (
            "Segments in the model's feature space (PCA)",
            pca_scatter(
                model[[c for c in model if c.endswith("_model")]].to_numpy(), placed["segment"], order
            ),
        ),
        "segment_sizes": ("Customers per segment", segment_sizes(profiles)),
        "segment_revenue": ("Share of net revenue by segment", segment_revenue(profiles)),
        "elbow_curve": ("Elbow method and silhouette by k, K-Means and Ward", elbow_curve(k_table, chosen_k)),
        "rfm_heatmap": ("RFM grid: mean net spend per R × F cell", rfm_heatmap(features)),
    }
    folder = reports.prepare()
    images: dict[str, Image] = {}
    metadata: dict[str, object] = {}
    for name, (caption, fig) in drawn.items():
        path, metadata[name] = save_figure(fig, folder, name)
        images[name] = Image(caption, path.name)
    for name, caption in SAVED_FIGURES.items():
        if (folder / f"{name}.png").exists():
            images[name] = Image(caption, f"{name}.png")

    crosstab = pd.crosstab(segments["segment"], segments["rfm_segment"]).reindex(order)
    crosstab = crosstab.rename_axis(columns=None).reset_index()
    statistics = eda.pivot_table(index=["grain", "variable"], columns="statistic", values="value", sort=False)
    facts, sections = segment_report_contents(
        profiles,
        comparison,
        crosstab,
        steps,
        statistics.reset_index(),
        rejected,
        images,
        as_of=str(features["as_of"].max().date()),
        customers=len(placed),
        k=chosen_k,
    )
    page = folder / "index.html"
    page.write_text(render_report("Customer segments", LEDE, facts, sections), encoding="utf-8")
    return dg.MaterializeResult(metadata={**metadata, "report": dg.MetadataValue.path(str(page))})
