"""Marts: customer features, the choice of k, each customer's segment, and segment profiles."""

import datetime as dt

import dagster as dg
from dagster_duckdb import DuckDBResource
from pydantic import Field

from retail_seg.core.clustering import segment_customers
from retail_seg.core.features import RFM_COLUMNS, build_customer_features
from retail_seg.core.figures import elbow_curve
from retail_seg.core.profiles import profile_segments
from retail_seg.core.quality import features_gate, segments_gate
from retail_seg.core.warehouse import (
    CUSTOMER_FEATURES,
    CUSTOMER_SEGMENTS,
    CUSTOMERS,
    K_SELECTION,
    SEGMENT_PROFILES,
    build_candidate_from_frame,
    publish,
    read_table,
)
from retail_seg.defs.gates import check_result, gate_spec, publish_if_passed, refuse
from retail_seg.defs.metadata import markdown_table, save_figure, table_metadata
from retail_seg.defs.resources import ReportsFolder


class FeaturesConfig(dg.Config):
    """The date the features are measured at."""

    as_of: str | None = None
    """ISO date (YYYY-MM-DD). Empty means the day after the latest transaction, so reruns agree."""


class SegmentationConfig(dg.Config):
    """K-Means settings; k is chosen by the elbow of inertia over [k_min, k_max]."""

    k_min: int = 2
    k_max: int = 10
    seed: int = 42
    features: list[str] = Field(default_factory=lambda: list(RFM_COLUMNS))
    """Customer features to cluster on (log-transformed, then standardized)."""


@dg.asset(
    deps=["clean_transactions"],
    group_name="marts",
    kinds={"duckdb"},
    code_version="2",
    pool="warehouse",
    check_specs=[
        gate_spec(
            "customer_features",
            "features",
            "One row per customer, enough customers to cluster, recency >= 0, frequency >= 1, "
            "net spend > 0, no NaN or infinity.",
        )
    ],
)
def customer_features(config: FeaturesConfig, warehouse: DuckDBResource):
    """One row per customer with a purchase: recency (days), frequency (purchase invoices), net spend."""
    as_of = dt.date.fromisoformat(config.as_of) if config.as_of else None
    with warehouse.get_connection() as conn:
        built = build_customer_features(conn, as_of=as_of)
        gate = features_gate(conn, CUSTOMER_FEATURES.candidate)
        publish_if_passed(conn, gate, CUSTOMER_FEATURES)
        metadata = table_metadata(conn, CUSTOMER_FEATURES) if gate.passed else {}
    if not gate.passed:
        yield from refuse(gate, "customer_features")
    yield dg.MaterializeResult(
        check_results=[check_result(gate, "customer_features")],
        metadata={
            **metadata,
            "as_of": str(built.as_of),
            "customers_without_purchase": built.without_purchase,
            "customers_with_non_positive_spend": built.non_positive_spend,
        },
    )


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            "k_selection",
            deps=["customer_features"],
            description="K-Means inertia and silhouette for each k tried, and which k the elbow chose.",
            group_name="marts",
            kinds={"duckdb", "sklearn"},
            code_version="1",
        ),
        dg.AssetSpec(
            "customer_segments",
            deps=["customer_features", "customers"],
            description="One row per featured customer: cluster, segment name, method and run id.",
            group_name="marts",
            kinds={"duckdb", "sklearn"},
            code_version="2",
        ),
    ],
    check_specs=[
        gate_spec(
            "customer_segments",
            "segments",
            "Every featured customer in exactly one segment, k clusters and none of them empty.",
        )
    ],
    pool="warehouse",
)
def segmentation(
    context: dg.AssetExecutionContext,
    config: SegmentationConfig,
    warehouse: DuckDBResource,
    reports: ReportsFolder,
):
    """Cluster customers with K-Means at the elbow k and name each cluster from its profile."""
    with warehouse.get_connection() as conn:
        features = read_table(conn, CUSTOMER_FEATURES)
        people = read_table(conn, CUSTOMERS)
        result = segment_customers(
            features, tuple(config.features), range(config.k_min, config.k_max + 1), seed=config.seed
        )
        names = profile_segments(features, result.assignments, people)[["cluster", "segment"]]
        assignments = result.assignments.merge(names, on="cluster").assign(
            method="kmeans", k=result.chosen_k, run_id=context.run.run_id
        )
        build_candidate_from_frame(conn, K_SELECTION, result.k_table.assign(method="kmeans"))
        build_candidate_from_frame(conn, CUSTOMER_SEGMENTS, assignments.sort_values("customer_id"))
        gate = segments_gate(conn, CUSTOMER_SEGMENTS.candidate, CUSTOMER_FEATURES, k=result.chosen_k)
        publish_if_passed(conn, gate, K_SELECTION, CUSTOMER_SEGMENTS)
        k_metadata = table_metadata(conn, K_SELECTION) if gate.passed else {}
        segment_metadata = table_metadata(conn, CUSTOMER_SEGMENTS) if gate.passed else {}
    if not gate.passed:
        yield from refuse(gate, "customer_segments")
    fig = elbow_curve(result.k_table, result.chosen_k)
    _, elbow = save_figure(fig, reports.prepare(), "elbow_curve")
    yield dg.MaterializeResult(
        asset_key="k_selection",
        metadata={
            **k_metadata,
            "chosen_k": result.chosen_k,
            "why": f"elbow (knee) of the inertia curve over k = {config.k_min}..{config.k_max}",
            "elbow_curve": elbow,
        },
    )
    sizes = assignments["segment"].value_counts().sort_index()
    yield dg.MaterializeResult(
        asset_key="customer_segments",
        check_results=[check_result(gate, "customer_segments")],
        metadata={
            **segment_metadata,
            "k": result.chosen_k,
            "silhouette": round(result.silhouette, 4),
            "seed": config.seed,
            "features": ", ".join(config.features),
            "segment_sizes": dg.MetadataValue.json({str(k): int(v) for k, v in sizes.items()}),
        },
    )


@dg.asset(
    deps=["customer_segments"],
    group_name="marts",
    kinds={"duckdb", "pandas"},
    code_version="1",
    pool="warehouse",
)
def segment_profiles(warehouse: DuckDBResource) -> dg.MaterializeResult:
    """One row per segment: size, customer and revenue share, R/F/M, demographics, label, recommendation."""
    with warehouse.get_connection() as conn:
        features = read_table(conn, CUSTOMER_FEATURES)
        clusters = read_table(conn, CUSTOMER_SEGMENTS, ["customer_id", "cluster"])
        people = read_table(conn, CUSTOMERS)
        profiles = profile_segments(features, clusters, people)
        build_candidate_from_frame(conn, SEGMENT_PROFILES, profiles)
        publish(conn, SEGMENT_PROFILES)
        metadata = table_metadata(conn, SEGMENT_PROFILES)
    shown = profiles[["segment", "customers", "revenue_share", "recommendation"]]
    return dg.MaterializeResult(metadata={**metadata, "profiles": markdown_table(shown)})
