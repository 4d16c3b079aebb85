"""Value: each customer's probability of being active, churn risk, expected purchases and lifetime value."""

import dagster as dg
from pydantic import Field

from retail_seg.core.lifetime import ValueSettings, build_customer_value
from retail_seg.core.quality import value_gate
from retail_seg.core.tables import CUSTOMER_FEATURES, CUSTOMER_VALUE, VALUE_MODELS
from retail_seg.defs.gates import Gate
from retail_seg.defs.metadata import ANALYTICS, layer_tags
from retail_seg.defs.resources import Warehouse

VALUE_GATE = Gate(
    "customer_value",
    "value",
    "One row per featured customer, BG/NBD and Gamma-Gamma parameters finite and positive, p_alive in "
    "[0, 1], expected purchases and lifetime value finite and not negative.",
    (CUSTOMER_VALUE, VALUE_MODELS),
)


class ValueConfig(dg.Config):
    """What a customer's value is computed over."""

    horizon_days: int = Field(default=90, description="Days ahead that expected purchases are forecast for.")
    lifetime_months: int = Field(default=12, description="Months of future purchases a lifetime value sums.")
    annual_discount_rate: float = Field(
        default=0.10, description="Yearly rate future spend is discounted at (applied monthly)."
    )
    margin: float = Field(
        default=1.0,
        description="Share of spend that is profit; 1.0 values customers by revenue, set your margin "
        "(e.g. 0.3) to value them by profit.",
    )

    def settings(self) -> ValueSettings:
        return ValueSettings(self.horizon_days, self.lifetime_months, self.annual_discount_rate, self.margin)


@dg.asset(
    deps=["customer_features", "transaction_history"],
    group_name="marts",
    kinds={"duckdb", "scipy"},
    code_version="3",
    owners=ANALYTICS,
    tags=layer_tags("marts", personal_data="customer_id"),
    check_specs=[VALUE_GATE.spec],
)
def customer_value(context: dg.AssetExecutionContext, config: ValueConfig, warehouse: Warehouse):
    """Per customer: BG/NBD probability of being active and churn risk, expected purchases over the
    horizon, Gamma-Gamma expected order value, discounted lifetime value; fitted by maximum likelihood.
    A history too thin for the models leaves every customer unvalued, says why, and goes on."""
    with warehouse.get_connection() as conn:
        built = build_customer_value(conn, config.settings())
        gate = value_gate(
            conn, CUSTOMER_VALUE.candidate, VALUE_MODELS.candidate, CUSTOMER_FEATURES, built.not_fitted
        )
        yield from VALUE_GATE.publish(conn, gate)
        settings = {f"setting_{k}": v for k, v in config.settings().__dict__.items()}
        if built.not_fitted:
            context.log.warning(f"customer_value: no models fitted: {built.not_fitted}")
            found: dict[str, object] = {"not_fitted": built.not_fitted}
        else:
            [(alive, value)] = conn.execute(f"SELECT avg(p_alive), sum(clv) FROM {CUSTOMER_VALUE}").fetchall()
            found = {
                "bgnbd": dg.MetadataValue.json({k: round(v, 4) for k, v in built.purchases.__dict__.items()}),
                "gamma_gamma": dg.MetadataValue.json(
                    {k: round(v, 4) for k, v in built.spend.__dict__.items()}
                ),
                "mean_p_alive": round(float(alive), 4),
                "total_clv": round(float(value), 2),
            }
        yield VALUE_GATE.materialized(conn, gate, {"repeat_buyers": built.repeat_buyers, **found, **settings})
