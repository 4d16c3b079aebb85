"""Marts: customer features, model input, the choice of k and method, each customer's segment, profiles."""

import datetime as dt
from typing import Literal

import dagster as dg
import pandas as pd
from pydantic import Field

from retail_seg.core.audit import previous_assignment
from retail_seg.core.customer_tables import (
    AsOfTooEarly,
    ModelDefaults,
    has_rfm,
    history_grain,
    model_defaults,
)
from retail_seg.core.drift import DRIFT_CHECKS, DriftThresholds, drift_since
from retail_seg.core.features import RFM_COLUMNS, build_customer_features, build_table_features
from retail_seg.core.figures import profile_figures, segmentation_figures
from retail_seg.core.frames import merge_one_to_one
from retail_seg.core.preprocessing import Choices, preprocess
from retail_seg.core.profiles import profile_segments
from retail_seg.core.quality import features_gate, segments_gate
from retail_seg.core.segmentation import SegmentedCustomers, clustered_features, crosstab, segment_customers
from retail_seg.core.tables import (
    CUSTOMER_FEATURES,
    CUSTOMER_SEGMENTS,
    CUSTOMER_SUMS,
    CUSTOMER_SUMS_BASIS,
    CUSTOMER_VALUE,
    CUSTOMERS,
    K_SELECTION,
    METHOD_COMPARISON,
    MODEL_FEATURES,
    PREPROCESSING_STEPS,
    SEGMENT_DRIFT,
    SEGMENT_IDENTITY,
    SEGMENT_PROFILES,
)
from retail_seg.core.warehouse import build_candidate_from_frame, publish, read_table, row_count
from retail_seg.defs.gates import Gate
from retail_seg.defs.metadata import ANALYTICS, layer_tags, markdown_table, record_figures, table_metadata
from retail_seg.defs.resources import SourceFile, Warehouse

# The sums customer_features keeps between publications, and the loads they sum.
KEPT_SUMS = (CUSTOMER_SUMS, CUSTOMER_SUMS_BASIS)

FEATURES_GATE = Gate(
    "customer_features",
    "features",
    "One row per customer, enough customers to cluster, recency >= 0, frequency >= 1, net spend > 0, "
    "no NaN or infinity.",
    (CUSTOMER_FEATURES,),
)
SEGMENTS_GATE = Gate(
    "customer_segments",
    "segments",
    "Every featured customer in exactly one segment, k clusters and none of them empty.",
    (CUSTOMER_SEGMENTS, SEGMENT_IDENTITY, SEGMENT_DRIFT),
)
DRIFT_SPECS = [
    dg.AssetCheckSpec(
        name,
        asset="customer_segments",
        blocking=False,
        description=f"Drift since the previous run ({name.replace('_', ' ')}): a warning, never a stop.",
    )
    for name in DRIFT_CHECKS
]
MARTS_TAGS = layer_tags("marts", personal_data="customer_id")
PROJECT_DEFAULTS = ModelDefaults()


class FeaturesConfig(dg.Config):
    """The date the features are measured at."""

    as_of: str | None = Field(
        default=None,
        description="ISO date (YYYY-MM-DD) recency is measured from. Empty means the day after the latest "
        "transaction, so reruns agree.",
    )

    def as_of_date(self) -> dt.date | None:
        return dt.date.fromisoformat(self.as_of) if self.as_of else None


class PreprocessingConfig(dg.Config):
    """How customer features become model input; every step is reported in the asset's metadata."""

    features: list[str] = Field(
        default_factory=list,
        description="Columns of marts.customer_features to cluster on; e.g. add avg_order_value, "
        "tenure_days, return_rate. Empty: the source's default (recency_days, frequency, monetary; a "
        "customer table's mapping may name others, [model] features).",
    )
    log_transform: bool | None = Field(
        default=None,
        description="log1p before anything else (spend and frequency are heavy-tailed). Empty: the "
        "source's default (yes; a customer table's mapping may say no, e.g. for bounded scores).",
    )
    outliers: str = Field(
        default="",
        description="Cap values outside the IQR fences (every customer keeps a segment), or keep them. "
        "Empty: the source's default (cap).",
    )
    iqr_multiplier: float = Field(default=1.5, description="Fences at Q1 - m·IQR and Q3 + m·IQR.")
    scale: Literal["standard", "none"] = Field(
        default="standard",
        description="Standardize each feature to mean 0 and standard deviation 1 so none dominates the "
        "distances, or leave the scale as it is.",
    )

    def choices(self, defaults: ModelDefaults = PROJECT_DEFAULTS) -> Choices:
        """The preprocessing: what is set here, the source's defaults for the rest."""
        return Choices(
            features=tuple(self.features) or defaults.features,
            log_transform=defaults.log_transform if self.log_transform is None else self.log_transform,
            outliers=_one_of(self.outliers or defaults.outliers, ("cap", "keep"), "outliers"),
            iqr_multiplier=self.iqr_multiplier,
            scale=self.scale,
        )


def _one_of(value: str, allowed: tuple[str, ...], name: str) -> str:
    if value not in allowed:
        raise dg.Failure(
            description=f"model_features: {name} must be one of {', '.join(allowed)}, not {value!r}"
        )
    return value


class SegmentationConfig(dg.Config):
    """The k sweep, the seed, and which clustering method is published."""

    k_min: int = Field(default=2, description="Smallest k of the sweep.")
    k_max: int = Field(
        default=10, description="Largest k of the sweep (capped below the number of customers)."
    )
    seed: int = Field(default=42, description="Seed of every random choice: restarts, samples.")
    method: Literal["auto", "kmeans", "ward"] = Field(
        default="auto",
        description="auto publishes whichever of K-Means and Ward has the higher silhouette at the "
        "chosen k; kmeans or ward forces one.",
    )
    ward_max_points: int = Field(
        default=5_000,
        description="Ward is exact up to this many customers; beyond, it runs on 2,000 K-Means "
        "micro-clusters weighted by their sizes.",
    )
    drift_changed_share: float = Field(
        default=0.20, description="Warn when more than this share of returning customers changed segment."
    )
    drift_min_agreement: float = Field(
        default=0.60, description="Warn when the adjusted Rand index with the previous run falls below this."
    )
    drift_size_change: float = Field(
        default=0.25, description="Warn when a segment grows or shrinks by more than this share."
    )
    drift_centre_shift: float = Field(
        default=0.50,
        description="Warn when a segment's centre moves more than this many standard deviations (log R/F/M).",
    )
    drift_psi: float = Field(
        default=0.20, description="Warn when a feature's population stability index exceeds this."
    )

    def drift_thresholds(self) -> DriftThresholds:
        return DriftThresholds(
            self.drift_changed_share,
            self.drift_min_agreement,
            self.drift_size_change,
            self.drift_centre_shift,
            self.drift_psi,
        )


@dg.asset(
    deps=["transaction_history"],
    group_name="marts",
    kinds={"duckdb"},
    code_version="8",
    owners=ANALYTICS,
    tags=MARTS_TAGS,
    check_specs=[FEATURES_GATE.spec],
)
def customer_features(config: FeaturesConfig, warehouse: Warehouse):
    """One row per customer with a purchase: R, F, M, engineered features, RFM scores and named segment."""
    with warehouse.get_connection() as conn:
        tables = history_grain(conn) == "customers"
        build = build_table_features if tables else build_customer_features
        try:
            built = build(conn, as_of=config.as_of_date())
        except AsOfTooEarly as early:
            raise dg.Failure(description=str(early), allow_retries=False) from None
        named = read_table(conn, CUSTOMER_FEATURES.candidate, ["rfm_segment"])["rfm_segment"].value_counts()
        gate = features_gate(conn, CUSTOMER_FEATURES.candidate, rfm=not tables or has_rfm(conn))
        yield from FEATURES_GATE.publish(conn, gate)
        yield FEATURES_GATE.materialized(
            conn,
            gate,
            {
                "as_of": str(built.as_of),
                "customers_without_purchase": built.without_purchase,
                "customers_with_non_positive_spend": built.non_positive_spend,
                "rfm_segments": dg.MetadataValue.json({str(k): int(v) for k, v in named.items()}),
                "customer_sums": built.sums,
                **({f"{t} rows": row_count(conn, t) for t in KEPT_SUMS} if built.kept_sums else {}),
            },
        )


@dg.asset(
    # The history's grain and mapping give the preprocessing's defaults (staging.customer_table, raw.loads).
    deps=["customer_features", "customers", "transaction_history"],
    group_name="marts",
    kinds={"duckdb", "pandas"},
    code_version="1",
    owners=ANALYTICS,
    tags=layer_tags("marts", personal_data="demographics"),
)
def model_features(
    config: PreprocessingConfig, source: SourceFile, warehouse: Warehouse
) -> dg.MaterializeResult:
    """Model input per customer: imputed, logged, IQR-capped, standardized; gender and the source's
    categories one-hot, age flagged."""
    with warehouse.get_connection() as conn:
        defaults = model_defaults(conn, source.known_tables())
        choices = config.choices(defaults)
        prepared = preprocess(read_table(conn, CUSTOMER_FEATURES), read_table(conn, CUSTOMERS), choices)
        build_candidate_from_frame(conn, MODEL_FEATURES, prepared.frame)
        build_candidate_from_frame(conn, PREPROCESSING_STEPS, prepared.steps)
        publish(conn, MODEL_FEATURES, PREPROCESSING_STEPS)
        metadata = table_metadata(conn, MODEL_FEATURES, PREPROCESSING_STEPS)
    return dg.MaterializeResult(
        metadata={
            **metadata,
            "model_features": ", ".join(choices.features),
            "defaults_from": defaults.mapping or "the project (R/F/M, logged, capped)",
            "log_transform": choices.log_transform,
            "steps": markdown_table(prepared.steps.round(3)),
            "outliers": choices.outliers,
            "ages_imputed": prepared.ages_imputed,
            "age_median": prepared.age_median if prepared.age_median is not None else "no ages in source",
        }
    )


def _segmentation_spec(
    key: str, description: str, code_version: str, kinds: set[str], tags: dict[str, str]
) -> dg.AssetSpec:
    return dg.AssetSpec(
        key,
        deps=["model_features", "customer_features", "customer_value"],
        description=description,
        group_name="marts",
        kinds={"duckdb", *kinds},
        code_version=code_version,
        owners=ANALYTICS,
        tags=tags,
    )


@dg.multi_asset(
    specs=[
        _segmentation_spec(
            "k_selection",
            "Inertia, silhouette, Calinski–Harabasz and Davies–Bouldin for K-Means and Ward at each k, and "
            "the k the criteria chose (the elbow proposes, the scores confirm or overrule).",
            "4",
            {"sklearn", "matplotlib"},
            layer_tags("marts"),
        ),
        _segmentation_spec(
            "method_comparison",
            "K-Means against Ward at the chosen k: metrics, their agreement (adjusted Rand), and which one "
            "is published.",
            "3",
            {"sklearn", "scipy", "matplotlib"},
            layer_tags("marts"),
        ),
        _segmentation_spec(
            "customer_segments",
            "One row per featured customer: cluster, label and segment of the published method, both "
            "methods' clusters, the named RFM segment, and the run id.",
            "6",
            {"sklearn", "matplotlib"},
            MARTS_TAGS,
        ),
    ],
    check_specs=[SEGMENTS_GATE.spec, *DRIFT_SPECS],
)
def segmentation(context: dg.AssetExecutionContext, config: SegmentationConfig, warehouse: Warehouse):
    """Cluster with K-Means and Ward, choose k (the elbow proposes, the scores confirm or overrule), publish
    the better method, name its clusters from their numbers."""
    with warehouse.get_connection() as conn:
        features, model = read_table(conn, CUSTOMER_FEATURES), read_table(conn, MODEL_FEATURES)
        # Churn risk names segments (a segment likely gone is not "frequent"); it is not clustered on.
        churn = read_table(conn, CUSTOMER_VALUE, ["customer_id", "churn_risk"])
        previous, known_ids = previous_assignment(conn)
        segmented = segment_customers(
            merge_one_to_one(features, churn),
            model,
            range(config.k_min, config.k_max + 1),
            seed=config.seed,
            method=config.method,
            ward_max_points=config.ward_max_points,
            run_id=context.run.run_id,
            previous=previous,
            known_ids=known_ids,
        )
        findings = _drift(segmented, features, previous, config.drift_thresholds())
        for table, frame in segmented.frames().items():
            build_candidate_from_frame(conn, table, frame)
        build_candidate_from_frame(conn, SEGMENT_DRIFT, pd.DataFrame([f.__dict__ for f in findings]))
        gate = segments_gate(conn, CUSTOMER_SEGMENTS.candidate, CUSTOMER_FEATURES, k=segmented.k)
        yield from SEGMENTS_GATE.publish(conn, gate, also=(K_SELECTION, METHOD_COMPARISON))
        for finding in findings:
            yield dg.AssetCheckResult(
                asset_key="customer_segments",
                check_name=finding.check,
                passed=finding.passed,
                severity=dg.AssetCheckSeverity.WARN,
                description=finding.words,
                metadata={
                    name: float(number)
                    for name, number in (("value", finding.value), ("threshold", finding.threshold))
                    if number is not None
                },
            )
        figures = {
            asset: record_figures(conn, asset, drawn)
            for asset, drawn in segmentation_figures(segmented, features, model).items()
        }
        yield SEGMENTS_GATE.materialized(
            conn, gate, {**figures["customer_segments"], **_segments_metadata(segmented, config.seed)}
        )
        for asset, table, described in (
            ("k_selection", K_SELECTION, {"chosen_k": segmented.k, "why": segmented.segmentation.k_reason}),
            ("method_comparison", METHOD_COMPARISON, _comparison_metadata(segmented)),
        ):
            yield dg.MaterializeResult(
                asset_key=asset, metadata={**table_metadata(conn, table), **figures[asset], **described}
            )


def _drift(segmented: SegmentedCustomers, features, previous, thresholds: DriftThresholds) -> list:
    """This run's segments against the previous run's, each drift check's finding."""
    current = segmented.assignments.merge(features[["customer_id", *RFM_COLUMNS]], on="customer_id")
    names = dict(zip(segmented.assignments["segment_id"], segmented.assignments["segment"], strict=True))
    return drift_since(previous, current, names, thresholds)


def _segments_metadata(segmented: SegmentedCustomers, seed: int) -> dict[str, object]:
    result = segmented.segmentation
    sizes = (
        (segmented.assignments["segment_id"] + " " + segmented.assignments["segment"])
        .value_counts()
        .sort_index()
    )
    return {
        "method": result.method,
        "k": segmented.k,
        "silhouette": round(float(result.comparison.set_index("method").at[result.method, "silhouette"]), 4),
        "seed": seed,
        "segment_sizes": dg.MetadataValue.json({str(k): int(v) for k, v in sizes.items()}),
        "segment_ids": markdown_table(segmented.identity),
    }


def _comparison_metadata(segmented: SegmentedCustomers) -> dict[str, object]:
    result, assignments = segmented.segmentation, segmented.assignments
    return {
        "published_method": result.method,
        "why": result.method_reason,
        "adjusted_rand_kmeans_vs_ward": round(result.agreement, 4),
        "ward_tree_leaves": result.tree.leaves,
        "ward_tree_exact": result.tree.exact,
        "comparison": markdown_table(result.comparison.round(4)),
        "clusters_by_rfm_segment": markdown_table(
            crosstab(assignments["cluster"], assignments["rfm_segment"])
        ),
    }


@dg.asset(
    deps=["customer_segments", "customer_features", "customers", "customer_value", "model_features"],
    group_name="marts",
    kinds={"duckdb", "pandas", "matplotlib"},
    code_version="5",
    owners=ANALYTICS,
    tags=layer_tags("marts"),
)
def segment_profiles(warehouse: Warehouse) -> dg.MaterializeResult:
    """One row per segment: size, customer and revenue share, R/F/M and more, demographics, label, advice."""
    with warehouse.get_connection() as conn:
        profiles = profile_segments(
            read_table(conn, CUSTOMER_FEATURES),
            read_table(conn, CUSTOMER_SEGMENTS, ["customer_id", "segment_id", "cluster", "label", "segment"]),
            read_table(conn, CUSTOMERS),
            read_table(conn, CUSTOMER_VALUE, ["customer_id", "p_alive", "churn_risk", "clv"]),
            clustered=clustered_features(read_table(conn, MODEL_FEATURES)),
        )
        build_candidate_from_frame(conn, SEGMENT_PROFILES, profiles)
        publish(conn, SEGMENT_PROFILES)
        figures = record_figures(conn, "segment_profiles", profile_figures(profiles))
        metadata = table_metadata(conn, SEGMENT_PROFILES)
    shown = profiles[["segment", "customers", "revenue_share", "recommendation"]]
    return dg.MaterializeResult(metadata={**metadata, **figures, "profiles": markdown_table(shown)})
