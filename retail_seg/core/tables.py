"""The warehouse's tables: each named by constant, with what it holds and what each column means.

The descriptions are written here once and reach the Dagster UI as the column schema of every asset
that writes the table, so the catalogue and the code never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Columns that several tables share, described once.
_LINE_COLUMNS = {
    "invoice_no": "invoice (order) number as the export wrote it",
    "stock_code": "product code (the category where the export has no product)",
    "description": "product description",
    "quantity": "units on the line; negative on a return",
    "unit_price": "price per unit",
    "invoice_date": "when the invoice was issued",
    "customer_id": "the customer's id in the export",
    "country": "the customer's country",
    "age": "the customer's age, where the export has it",
    "gender": "the customer's gender, where the export has it",
    "product_category": "product category, where the export has it",
}
_LINEAGE_COLUMNS = {
    "load_id": "the run that loaded the line",
    "source_file": "the file the line came from",
    "source_row": "the line's row number in its file (1 = first line after the header)",
}
_FEATURE_COLUMNS = {
    "recency_days": "whole days from the last purchase to the as-of date",
    "frequency": "distinct purchase invoices",
    "monetary": "net spend: purchases less returns",
    "tenure_days": "days from the first purchase to the as-of date",
    "avg_order_value": "net spend per purchase invoice",
    "mean_days_between": "mean days between purchases (empty for a single purchase)",
    "return_rate": "share of what was bought that was returned",
    "distinct_products": "distinct products bought, returns aside",
}
_METRIC_COLUMNS = {
    "method": "clustering method: kmeans or ward",
    "k": "number of clusters",
    "inertia": "within-cluster sum of squares (lower is tighter)",
    "silhouette": "silhouette score, -1..1 (higher is better separated)",
    "calinski_harabasz": "Calinski–Harabasz index (higher is better)",
    "davies_bouldin": "Davies–Bouldin index (lower is better)",
}
_SEGMENT_COLUMNS = {
    "segment_id": "stable segment id: kept across runs while the segment holds the same customers",
    "cluster": "cluster number of the published method (0 = highest mean spend)",
    "segment": "segment name: the label, numbered when two clusters share one",
    "label": "business label derived from the cluster's recency, frequency and spend",
    "rfm_segment": "named segment of the R × F score map (Champions, At Risk, ...)",
}


@dataclass(frozen=True)
class Table:
    """A warehouse table, named by constant so that SQL never takes a table name from user input."""

    schema: str
    name: str
    description: str = ""
    columns: dict[str, str] = field(default_factory=dict, compare=False, hash=False)

    def __str__(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def candidate(self) -> Table:
        """Where a new version is built before it replaces the live table."""
        return Table(self.schema, f"_candidate_{self.name}", self.description, self.columns)

    @property
    def live(self) -> Table:
        """The published table a candidate will replace (itself, for a live table)."""
        return Table(self.schema, self.name.removeprefix("_candidate_"), self.description, self.columns)

    def describe(self, column: str) -> str:
        """What a column holds; per-segment statistics and model inputs are named after their source."""
        if column in self.columns:
            return self.columns[column]
        for prefix, words in (("mean_", "mean"), ("median_", "median")):
            base = column.removeprefix(prefix)
            if column.startswith(prefix) and base in _FEATURE_COLUMNS:
                return f"{words} per segment of {base}: {_FEATURE_COLUMNS[base]}"
        if column.endswith("_model") and column.removesuffix("_model") in _FEATURE_COLUMNS:
            return f"{column.removesuffix('_model')} as the model sees it, after every preprocessing step"
        if column.startswith("gender_"):
            return f"1 when the customer's gender is {column.removeprefix('gender_')} (one-hot)"
        return ""


RAW_TRANSACTIONS = Table(
    "raw",
    "transactions",
    "Every line of the source export: canonical column names, values as text, and where it came from.",
    {**_LINEAGE_COLUMNS, "source_format": "the export format recognised from the header", **_LINE_COLUMNS},
)
RAW_LOADS = Table(
    "raw",
    "loads",
    "One row per load the publication read: the file, the checksum of the bytes loaded, what it held.",
    {
        "load_id": "the load (a file taken into the history once)",
        "key": "the file's key in the history: its name (a corrected file under the name supersedes)",
        "source_file": "the file loaded",
        "sha256": "SHA-256 of the bytes loaded",
        "bytes": "bytes loaded",
        "mapping": "the mapping the file was read by",
        "lines": "lines in the file",
        "clean": "lines that passed every rule",
        "rejected": "lines rejected in the load (duplicates of other files counted apart)",
        "loaded_at": "when the load was accepted (UTC)",
        "run_id": "the run that loaded it",
    },
)
LOAD_EVENTS = Table(
    "audit",
    "load_events",
    "What each publication changed in the history: files loaded, versions superseded, files refused.",
    {
        "run_id": "the publication that recorded it",
        "event": "loaded, superseded (a corrected file replaced this load) or refused",
        "key": "the file's key in the history",
        "source_file": "the file",
        "sha256": "SHA-256 of the bytes of that version",
        "load_id": "the load",
        "lines": "lines in that version",
        "detail": "in words: what replaced it, or why it was refused",
    },
)
REJECTED_ACROSS_LOADS = Table(
    "staging",
    "rejected_across_loads",
    "Clean lines of a load that the whole history rejects: a repeat of an earlier load's line (an "
    "invoice in two daily files, counted once), or a quantity far beyond what its product's lines carry "
    "in all loads.",
    {
        "load_id": "the load the line is in",
        "source_row": "the line's row in its file",
        "source_file": "the load's file",
        "rule": "duplicate_line or absurd_quantity",
    },
)
STAGING_INVOICES = Table(
    "staging",
    "invoices",
    "The clean lines summed per customer, invoice and date: what the features read. Each load keeps its "
    "own sums beside its lines; a load some of whose lines the whole history rejects is summed again "
    "without them.",
    {
        "customer_id": "the customer's id in the export",
        "invoice_no": "invoice (order) number as the export wrote it",
        "invoice_date": "when the invoice was issued",
        "net": "the invoice's lines summed: purchases less returns",
        "purchased": "the invoice's purchase lines summed (empty when it has none)",
        "purchase_lines": "the invoice's lines that are purchases, not returns",
        "load_id": _LINEAGE_COLUMNS["load_id"],
    },
)
CUSTOMER_SUMS = Table(
    "staging",
    "customer_sums",
    "Each customer's sums over every invoice of the history, kept between publications so that a day's "
    "file is added to them rather than every invoice summed again: what the features derive from.",
    {
        "customer_id": "the customer's id in the export",
        "last_purchase": "the latest invoice with a purchase on it",
        "first_purchase": "the earliest invoice with a purchase on it",
        "frequency": "invoices with a purchase on them",
        "net": "every invoice summed: purchases less returns",
        "purchased": "the purchase lines summed (empty when there are none)",
    },
)
CUSTOMER_SUMS_BASIS = Table(
    "staging",
    "customer_sums_basis",
    "The loads `staging.customer_sums` sums, each as it was summed: a load whose part changed (corrected, "
    "erased, judged again) makes the next publication sum every invoice again.",
    {
        "load_id": "the load",
        "part": "its file's checksum, its line counts and the lines of it the whole history rejects",
    },
)
STAGING_TRANSACTIONS = Table(
    "staging",
    "transactions",
    "Typed, deduplicated invoice lines that passed every rejection rule.",
    {
        **_LINE_COLUMNS,
        "age": "the customer's age in whole years (0–120), where the export has it",
        "gender": "female, male or other, normalised from the export's spelling",
        "is_return": "true for a return or cancellation (C-prefixed invoice or negative quantity)",
        "line_total": "quantity × unit price, exact to the cent",
        "load_id": _LINEAGE_COLUMNS["load_id"],
        "source_row": _LINEAGE_COLUMNS["source_row"],
    },
)
REJECTED_ROWS = Table(
    "staging",
    "rejected_rows",
    "Raw lines that staging refused, with the first rule each broke and its values as the file had them.",
    {**_LINEAGE_COLUMNS, "rule": "the first rejection rule the line broke", **_LINE_COLUMNS},
)
CUSTOMERS = Table(
    "staging",
    "customers",
    "One row per customer over every loaded line: demographics, country, when first and last seen.",
    {
        "customer_id": _LINE_COLUMNS["customer_id"],
        "age": "the age the customer's lines give most often",
        "gender": "the gender the customer's lines give most often (female, male, other)",
        "country": "the country the customer's lines give most often",
        "first_seen": "the customer's first line",
        "last_seen": "the customer's last line",
        "lines": "clean lines of the customer",
        "distinct_products": _FEATURE_COLUMNS["distinct_products"],
    },
)
CUSTOMER_TABLE = Table(
    "staging",
    "customer_table",
    "View: for a history of customer tables (one row per customer), each customer's row from the latest "
    "table that lists them, typed by its mapping.",
    {
        "customer_id": _LINE_COLUMNS["customer_id"],
        "as_of": "the date the table's recency and ages are measured at (its mapping's, or the load's)",
        "recency_days": _FEATURE_COLUMNS["recency_days"],
        "frequency": "purchases, as the table counts them (a sum of its count columns)",
        "monetary": "spend, as the table totals it (a sum of its spend columns)",
        "age": "age at as_of (stated, or from the birth year); empty where implausible",
    },
)
CUSTOMER_FLAGS = Table(
    "staging",
    "customer_flags",
    "View: the values of customer tables set aside (the row kept, the value left empty), with the rule.",
    {
        "rule": "implausible_age or unknown_category",
        "column": "the column whose value was set aside",
        "value": "the value as the table had it",
        "detail": "why, in words",
    },
)
EDA_SUMMARY = Table(
    "marts",
    "eda_summary",
    "Summary statistics of every numeric variable at transaction and customer grain (long format).",
    {
        "grain": "transaction or customer",
        "variable": "the variable summarised",
        "statistic": "count, missing, mean, median, mode, std, min, q05, q25, q75, q95, max or skew",
        "value": "the statistic's value",
    },
)
CUSTOMER_FEATURES = Table(
    "marts",
    "customer_features",
    "One row per customer with positive net spend: R, F, M, engineered features, RFM scores and segment.",
    {
        "customer_id": _LINE_COLUMNS["customer_id"],
        **{k: v for k, v in _FEATURE_COLUMNS.items() if k != "distinct_products"},
        "first_purchase": "the customer's first purchase",
        "last_purchase": "the customer's last purchase",
        "as_of": "the date recency is measured from",
        "r_score": "recency score 1–5 (5 = most recent fifth)",
        "f_score": "frequency score 1–5 (5 = most frequent fifth)",
        "m_score": "monetary score 1–5 (5 = highest-spending fifth)",
        "rfm_segment": _SEGMENT_COLUMNS["rfm_segment"],
    },
)
_VALUE_COLUMNS = {
    "p_alive": "BG/NBD probability that the customer is still active at the as-of date",
    "churn_risk": "1 - p_alive",
    "expected_purchases": "BG/NBD expected purchase days over the forecast horizon (value settings)",
    "expected_order_value": "Gamma-Gamma expected spend per purchase day",
    "clv": "discounted lifetime value over the lifetime horizon, times the margin (value settings)",
}
CUSTOMER_VALUE = Table(
    "marts",
    "customer_value",
    "One row per featured customer: BG/NBD and Gamma-Gamma inputs, probability of being active, churn "
    "risk, expected purchases, expected order value and lifetime value.",
    {
        "customer_id": _LINE_COLUMNS["customer_id"],
        "x": "repeat purchases: distinct purchase days after the first",
        "t_x": "weeks from the first to the last purchase",
        "T": "weeks from the first purchase to the as-of date",
        "m_x": "mean net spend per repeat purchase day (empty without one)",
        **_VALUE_COLUMNS,
    },
)
VALUE_MODELS = Table(
    "marts",
    "value_models",
    "The fitted BG/NBD (r, alpha, a, b) and Gamma-Gamma (p, q, gamma) parameters, and the value settings.",
    {"model": "bgnbd, gamma_gamma or settings", "parameter": "the parameter's name", "value": "its value"},
)
MODEL_FEATURES = Table(
    "marts",
    "model_features",
    "The clustering's input per customer, after imputation, log, IQR capping and scaling.",
    {
        "customer_id": _LINE_COLUMNS["customer_id"],
        "age": "age with missing values filled by the median age",
        "age_imputed": "true where the age was missing and filled",
    },
)
PREPROCESSING_STEPS = Table(
    "marts",
    "preprocessing_steps",
    "What each model feature went through on its way into the model.",
    {
        "feature": "the customer feature",
        "imputed_with_median": "values missing and filled with the feature's median",
        "log1p": "whether log(1 + x) was applied",
        "iqr_low": "lower IQR fence, in the feature's own units",
        "iqr_high": "upper IQR fence, in the feature's own units",
        "capped": "values outside the fences, capped to them",
        "scaled_mean": "mean removed by standardization",
        "scaled_std": "standard deviation divided out by standardization",
    },
)
K_SELECTION = Table(
    "marts",
    "k_selection",
    "Both methods' metrics at every k of the sweep, and the k chosen.",
    {
        **_METRIC_COLUMNS,
        "preferred_by": "the criteria that prefer this k (K-Means rows): the elbow, silhouette, "
        "Calinski–Harabasz, Davies–Bouldin",
        "chosen": "true at the chosen k: the one most criteria prefer (README, Clustering)",
    },
)
METHOD_COMPARISON = Table(
    "marts",
    "method_comparison",
    "K-Means against Ward at the chosen k: metrics, agreement, which one is published and why.",
    {
        **_METRIC_COLUMNS,
        "adjusted_rand_vs_other": "adjusted Rand index between the two methods' clusterings",
        "selected": "true for the published method",
        "reason": "why that method is published",
        "k_reason": "why this k: which k each criterion prefers, and the rule that settled it",
    },
)
CUSTOMER_SEGMENTS = Table(
    "marts",
    "customer_segments",
    "One row per featured customer: the cluster and segment of the published method, and both methods'.",
    {
        "customer_id": _LINE_COLUMNS["customer_id"],
        **_SEGMENT_COLUMNS,
        "method": "the published method",
        "k": "number of clusters",
        "kmeans_cluster": "the customer's K-Means cluster at the chosen k",
        "ward_cluster": "the customer's Ward cluster at the chosen k",
        "distance_to_centre": "distance in the model's space to the centre of the customer's own cluster",
        "distance_to_nearest_other": "distance in the model's space to the nearest other cluster's centre",
        "run_id": "the run that segmented the customer",
    },
)
SEGMENT_IDENTITY = Table(
    "marts",
    "segment_identity",
    "What happened to each segment id in this run: created, kept, renamed (same customers, new name) or "
    "retired, matched by the customers the run's segments share with the previous run's.",
    {
        "segment_id": _SEGMENT_COLUMNS["segment_id"],
        "event": "created, kept, renamed or retired",
        "segment": "its name in this run (empty when retired)",
        "previous_segment": "its name in the previous run (empty when created)",
        "shared_customers": "customers in both this segment and the one it was matched to",
        "share": "of this segment's returning customers, the share that came from the matched one",
    },
)
SEGMENT_DRIFT = Table(
    "marts",
    "segment_drift",
    "This run's drift checks against the previous run: each measure, its threshold, and what it says.",
    {
        "check": "segment_changes, segment_agreement, segment_sizes, segment_centres, k_and_method or "
        "feature_stability",
        "passed": "false when the measure crossed its threshold (a warning, never a stop)",
        "value": "what was measured",
        "threshold": "the threshold from the segmentation's settings",
        "words": "the finding in plain words",
    },
)
SEGMENT_PROFILES = Table(
    "marts",
    "segment_profiles",
    "One row per segment: size, shares, R/F/M and more, demographics, label and recommendation.",
    {
        "segment_id": _SEGMENT_COLUMNS["segment_id"],
        "cluster": _SEGMENT_COLUMNS["cluster"],
        "customers": "customers in the segment",
        "revenue": "net revenue of the segment's customers",
        "customer_share": "share of all segmented customers",
        "revenue_share": "share of all net revenue",
        "top_rfm_segment": "the named RFM segment most of the segment's customers are in",
        "mean_age": "mean age (imputed ages left out)",
        "female_share": "share of customers of known gender who are female",
        "label": _SEGMENT_COLUMNS["label"],
        "segment": _SEGMENT_COLUMNS["segment"],
        "recommendation": "what marketing should do for the segment",
    },
)
SEGMENT_MIGRATION = Table(
    "marts",
    "segment_migration",
    "Customers per (previous segment, current segment) since the previous recorded run.",
    {
        "from_segment": "segment in the previous run",
        "to_segment": "segment in this run",
        "customers": "customers who moved so (or stayed)",
        "previous_run": "the run compared with",
    },
)
FALLEN_FROM_HIGH_VALUE = Table(
    "marts",
    "fallen_from_high_value",
    "Customers who were champions (the top segment) in the previous run and are not in this one.",
    {
        "customer_id": _LINE_COLUMNS["customer_id"],
        "from_segment": "segment in the previous run",
        "to_segment": "segment in this run",
        "from_label": "label in the previous run",
        "to_label": "label in this run",
        "monetary_before": "net spend in the previous run",
        "monetary_now": "net spend in this run",
        "recency_days_now": "recency in this run",
    },
)
FIGURES = Table(
    "reports",
    "figures",
    "Every figure of the analysis as PNG, with the asset that drew it; the report embeds them.",
    {
        "asset": "the asset that drew the figure",
        "name": "the figure's file name, without .png",
        "caption": "what the figure shows",
        "position": "order in which the owning asset lists its figures",
        "png": "the image, PNG bytes",
    },
)
AUDIT_RUNS = Table(
    "audit",
    "runs",
    "One row per recorded run: lineage, row counts, rejections, parameters, metrics, code versions.",
    {
        "run_id": "the Dagster run id",
        "recorded_at": "when the run was recorded (UTC)",
        "as_of": "the date its features were measured at",
        "source_file": "the source the run loaded",
        "source_sha256": "SHA-256 of the bytes loaded",
        "row_counts": "rows of every published table (JSON)",
        "rejected_by_rule": "rejected lines per rule (JSON)",
        "parameters": "the run's config and tags (JSON)",
        "metrics": "both methods' metrics at the chosen k (JSON)",
        "code_versions": "every asset's code version (JSON)",
    },
)
SEGMENT_HISTORY = Table(
    "audit",
    "segment_history",
    "Every run's segment for every customer, with the features that placed them: never overwritten.",
    {
        "run_id": "the run",
        "as_of": "the date the run's features were measured at",
        "customer_id": _LINE_COLUMNS["customer_id"],
        **_SEGMENT_COLUMNS,
        "method": "the published method",
        "k": "number of clusters",
        "rfm_segment": _SEGMENT_COLUMNS["rfm_segment"],
        "recency_days": _FEATURE_COLUMNS["recency_days"],
        "frequency": _FEATURE_COLUMNS["frequency"],
        "monetary": _FEATURE_COLUMNS["monetary"],
        "p_alive": _VALUE_COLUMNS["p_alive"],
        "clv": _VALUE_COLUMNS["clv"],
        "distance_to_centre": "distance in the model's space to the centre of the customer's own cluster",
        "distance_to_nearest_other": "distance in the model's space to the nearest other cluster's centre",
    },
)
SEGMENT_EVENTS = Table(
    "audit",
    "segment_events",
    "Every run's segment ids and what happened to each: created, kept, renamed or retired (never "
    "overwritten).",
    {"run_id": "the run", **SEGMENT_IDENTITY.columns},
)
CUSTOMER_HISTORY = Table(
    "audit",
    "customer_history",
    "View: a customer's segment in every run, with the run's lineage and the features that placed them.",
    {**SEGMENT_HISTORY.columns, **AUDIT_RUNS.columns},
)
AUDIENCE_MEMBERS = Table(
    "marts",
    "audience_members",
    "The customers of every named audience in the published run, and whether each is held out as control.",
    {
        "audience": "the audience's name, as the exports settings define it",
        "customer_id": _LINE_COLUMNS["customer_id"],
        "holdout": "true when the customer is in the audience's control group: not to be contacted",
        "run_id": "the run that built the audience",
    },
)
AUDIENCE_HISTORY = Table(
    "audit",
    "audience_history",
    "Every run's audience members and control groups, so a campaign's lift can be measured later "
    "(never overwritten).",
    {"run_id": "the run", **{k: v for k, v in AUDIENCE_MEMBERS.columns.items() if k != "run_id"}},
)
EXPORT_FILES = Table(
    "audit",
    "exports",
    "Every file every run exported for the CRM, with its rows, size and SHA-256, as its manifest lists it.",
    {
        "run_id": "the run that wrote the file",
        "path": "the file, relative to its run's folder of the exports (as the manifest lists it)",
        "rows": "data rows in the file",
        "bytes": "the file's size",
        "sha256": "SHA-256 of the file's bytes",
    },
)
ERASURES = Table(
    "audit",
    "erasures",
    "Every erasure of a customer (python -m retail_seg erase customer ID): when, and how much was removed "
    "from where; never who.",
    {
        "erasure_id": "a random id of the erasure",
        "erased_at": "when the erasure was published (UTC)",
        "rows_by_table": "rows removed from each table (JSON)",
        "lake_files": "the lake's partition files rewritten without the customer",
        "lake_lines": "lines removed from them",
        "export_files": "export files rewritten without the customer",
    },
)
RETENTION = Table(
    "audit",
    "retention",
    "What retention removed of earlier runs (per-customer history, export folders), when and by which run.",
    {
        "applied_at": "when the removal was made (UTC)",
        "by_run": "the run that applied the retention settings",
        "run_id": "the earlier run whose data was removed (its record in audit.runs stays)",
        "what": "what was removed: a table's rows, or an exports folder's files",
        "rows": "how many rows (or files)",
    },
)

SCHEMAS = ("raw", "staging", "marts", "reports", "audit")
