"""Marts: customer features, model input, the choice of k and method, each customer's segment, profiles."""

import datetime as dt
from typing import Literal

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource
from pydantic import Field

from retail_seg.core.features import RFM_COLUMNS, build_customer_features
from retail_seg.core.figures import dendrogram, elbow_curve
from retail_seg.core.preprocessing import Choices, preprocess
from retail_seg.core.profiles import profile_segments
from retail_seg.core.quality import features_gate, segments_gate
from retail_seg.core.segmentation import crosstab, segment
from retail_seg.core.warehouse import (
    CUSTOMER_FEATURES,
    CUSTOMER_SEGMENTS,
    CUSTOMERS,
    K_SELECTION,
    METHOD_COMPARISON,
    MODEL_FEATURES,
    PREPROCESSING_STEPS,
    SEGMENT_PROFILES,
    build_candidate_from_frame,
    publish,
    read_table,
)
from retail_seg.defs.gates import check_result, gate_spec, publish_if_passed, refuse
from retail_seg.defs.metadata import markdown_table, save_figure, table_metadata
from retail_seg.defs.resources import WAREHOUSE_POOL, ReportsFolder


class FeaturesConfig(dg.Config):
    """The date the features are measured at."""

    as_of: str | None = None
    """ISO date (YYYY-MM-DD). Empty means the day after the latest transaction, so reruns agree."""


class PreprocessingConfig(dg.Config):
    """How customer features become model input; every step is reported in the asset's metadata."""

    features: list[str] = Field(default_factory=lambda: list(RFM_COLUMNS))
    """Columns of marts.customer_features to cluster on; e.g. add avg_order_value, tenure_days."""
    log_transform: bool = True
    """log1p before anything else: spend and frequency are heavy-tailed."""
    outliers: Literal["cap", "keep"] = "cap"
    """Cap values outside the IQR fences (every customer keeps a segment), or keep them as they are."""
    iqr_multiplier: float = 1.5
    """Fences at Q1 - m·IQR and Q3 + m·IQR."""
    scale: Literal["standard", "none"] = "standard"
    """Standardize each feature to mean 0 and standard deviation 1 so none dominates the distances."""


class SegmentationConfig(dg.Config):
    """The k sweep, the seed, and which clustering method is published."""

    k_min: int = 2
    k_max: int = 10
    seed: int = 42
    method: Literal["auto", "kmeans", "ward"] = "auto"
    """auto publishes whichever of K-Means and Ward has the higher silhouette at the elbow's k."""
    ward_max_points: int = 5_000
    """Ward is exact up to this many customers; beyond, it runs on weighted K-Means micro-clusters."""


@dg.asset(
    deps=["clean_transactions"],
    group_name="marts",
    kinds={"duckdb"},
    code_version="5",
    pool=WAREHOUSE_POOL,
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
    """One row per customer with a purchase: R, F, M, engineered features, RFM scores and named segment."""
    as_of = dt.date.fromisoformat(config.as_of) if config.as_of else None
    with warehouse.get_connection() as conn:
        built = build_customer_features(conn, as_of=as_of)
        gate = features_gate(conn, CUSTOMER_FEATURES.candidate)
        publish_if_passed(conn, gate, CUSTOMER_FEATURES)
        if gate.passed:
            metadata = table_metadata(conn, CUSTOMER_FEATURES)
            named = read_table(conn, CUSTOMER_FEATURES, ["rfm_segment"])["rfm_segment"].value_counts()
    if not gate.passed:
        yield from refuse(gate, "customer_features")
    yield dg.MaterializeResult(
        check_results=[check_result(gate, "customer_features")],
        metadata={
            **metadata,
            "as_of": str(built.as_of),
            "customers_without_purchase": built.without_purchase,
            "customers_with_non_positive_spend": built.non_positive_spend,
            "rfm_segments": dg.MetadataValue.json({str(k): int(v) for k, v in named.items()}),
        },
    )


@dg.asset(
    deps=["customer_features", "customers"],
    group_name="marts",
    kinds={"duckdb", "pandas"},
    code_version="1",
    pool=WAREHOUSE_POOL,
)
def model_features(config: PreprocessingConfig, warehouse: DuckDBResource) -> dg.MaterializeResult:
    """Model input per customer: imputed, logged, IQR-capped, standardized; gender one-hot, age flagged."""
    choices = Choices(
        features=tuple(config.features),
        log_transform=config.log_transform,
        outliers=config.outliers,
        iqr_multiplier=config.iqr_multiplier,
        scale=config.scale,
    )
    with warehouse.get_connection() as conn:
        prepared = preprocess(read_table(conn, CUSTOMER_FEATURES), read_table(conn, CUSTOMERS), choices)
        build_candidate_from_frame(conn, MODEL_FEATURES, prepared.frame)
        build_candidate_from_frame(conn, PREPROCESSING_STEPS, prepared.steps)
        publish(conn, MODEL_FEATURES, PREPROCESSING_STEPS)
        metadata = table_metadata(conn, MODEL_FEATURES)
    return dg.MaterializeResult(
        metadata={
            **metadata,
            "model_features": ", ".join(choices.features),
            "steps": markdown_table(prepared.steps.round(3)),
            "outliers": choices.outliers,
            "ages_imputed": prepared.ages_imputed,
            "age_median": prepared.age_median if prepared.age_median is not None else "no ages in source",
        }
    )


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            "k_selection",
            deps=["model_features"],
            description="Inertia, silhouette, Calinski–Harabasz and Davies–Bouldin for K-Means and Ward at "
            "each k, and the k the elbow chose.",
            group_name="marts",
            kinds={"duckdb", "sklearn"},
            code_version="3",
        ),
        dg.AssetSpec(
            "method_comparison",
            deps=["model_features"],
            description="K-Means against Ward at the chosen k: metrics, their agreement (adjusted Rand), and "
            "which one is published.",
            group_name="marts",
            kinds={"duckdb", "sklearn", "scipy"},
            code_version="2",
        ),
        dg.AssetSpec(
            "customer_segments",
            deps=["model_features", "customer_features", "customers"],
            description="One row per featured customer: cluster and segment of the published method, both "
            "methods' clusters, the named RFM segment, and the run id.",
            group_name="marts",
            kinds={"duckdb", "sklearn"},
            code_version="4",
        ),
    ],
    check_specs=[
        gate_spec(
            "customer_segments",
            "segments",
            "Every featured customer in exactly one segment, k clusters and none of them empty.",
        )
    ],
    pool=WAREHOUSE_POOL,
)
def segmentation(
    context: dg.AssetExecutionContext,
    config: SegmentationConfig,
    warehouse: DuckDBResource,
    reports: ReportsFolder,
):
    """Cluster with K-Means and Ward, take the elbow's k, publish the better method, name its clusters."""
    with warehouse.get_connection() as conn:
        features = read_table(conn, CUSTOMER_FEATURES)
        model = read_table(conn, MODEL_FEATURES)
        people = read_table(conn, CUSTOMERS)
        # Rows in the features' order, whatever order the tables were read in.
        model = model.set_index("customer_id").loc[features["customer_id"]].reset_index()
        matrix = model[[c for c in model if c.endswith("_model")]].to_numpy()
        result = segment(
            matrix,
            features["monetary"].to_numpy(),
            range(config.k_min, config.k_max + 1),
            seed=config.seed,
            method=config.method,
            ward_max_points=config.ward_max_points,
        )
        clusters = pd.DataFrame({"customer_id": model["customer_id"], "cluster": result.clusters})
        names = profile_segments(features, clusters, people)[["cluster", "segment"]]
        assignments = (
            clusters.merge(names, on="cluster")
            .merge(features[["customer_id", "rfm_segment"]], on="customer_id")
            .assign(
                method=result.method,
                k=result.chosen_k,
                kmeans_cluster=result.labels["kmeans"],
                ward_cluster=result.labels["ward"],
                run_id=context.run.run_id,
            )
            .sort_values("customer_id")
        )
        build_candidate_from_frame(conn, K_SELECTION, result.k_table)
        build_candidate_from_frame(
            conn, METHOD_COMPARISON, result.comparison.assign(reason=result.method_reason)
        )
        build_candidate_from_frame(conn, CUSTOMER_SEGMENTS, assignments)
        gate = segments_gate(conn, CUSTOMER_SEGMENTS.candidate, CUSTOMER_FEATURES, k=result.chosen_k)
        publish_if_passed(conn, gate, K_SELECTION, METHOD_COMPARISON, CUSTOMER_SEGMENTS)
        if gate.passed:
            metadata = {
                t: table_metadata(conn, t) for t in (K_SELECTION, METHOD_COMPARISON, CUSTOMER_SEGMENTS)
            }
    if not gate.passed:
        yield from refuse(gate, "customer_segments")
    folder = reports.prepare()
    _, elbow = save_figure(elbow_curve(result.k_table, result.chosen_k), folder, "elbow_curve")
    _, tree = save_figure(dendrogram(result.tree, result.chosen_k), folder, "dendrogram")
    yield dg.MaterializeResult(
        asset_key="k_selection",
        metadata={
            **metadata[K_SELECTION],
            "chosen_k": result.chosen_k,
            "why": result.k_reason,
            "elbow_curve": elbow,
        },
    )
    by_rfm = crosstab(assignments["cluster"], assignments["rfm_segment"])
    yield dg.MaterializeResult(
        asset_key="method_comparison",
        metadata={
            **metadata[METHOD_COMPARISON],
            "published_method": result.method,
            "why": result.method_reason,
            "adjusted_rand_kmeans_vs_ward": round(result.agreement, 4),
            "ward_tree_leaves": result.tree.leaves,
            "ward_tree_exact": result.tree.exact,
            "comparison": markdown_table(result.comparison.round(4)),
            "clusters_by_rfm_segment": markdown_table(by_rfm),
            "dendrogram": tree,
        },
    )
    sizes = assignments["segment"].value_counts().sort_index()
    yield dg.MaterializeResult(
        asset_key="customer_segments",
        check_results=[check_result(gate, "customer_segments")],
        metadata={
            **metadata[CUSTOMER_SEGMENTS],
            "method": result.method,
            "k": result.chosen_k,
            "silhouette": round(
                float(result.comparison.set_index("method").loc[result.method, "silhouette"]), 4
            ),
            "seed": config.seed,
            "segment_sizes": dg.MetadataValue.json({str(k): int(v) for k, v in sizes.items()}),
        },
    )


@dg.asset(
    deps=["customer_segments"],
    group_name="marts",
    kinds={"duckdb", "pandas"},
    code_version="3",
    pool=WAREHOUSE_POOL,
)
def segment_profiles(warehouse: DuckDBResource) -> dg.MaterializeResult:
    """One row per segment: size, customer and revenue share, R/F/M and more, demographics, label, advice."""
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
