"""Lifetime value and churn risk: BG/NBD for repeat purchasing, Gamma-Gamma for spend, fitted by maximum
likelihood.

The likelihoods are the closed forms of Fader, Hardie & Lee (2005, "Counting Your Customers the Easy Way")
and Fader, Hardie & Lee (2005, "RFM and CLV"), maximised over log parameters with scipy. On the CDNOW
sample this reproduces the published parameters in a fraction of a second (README, "Lifetime value");
pymc-marketing fits the same models by MAP through PyTensor, at seconds per fit and a heavy install, and
is what the benchmark cross-checks against.

A customer is summarised as BG/NBD counts it: `x` repeat purchases (distinct purchase days after the
first), `t_x` the time from the first to the last purchase and `T` from the first purchase to the as-of
date, both in weeks; `m_x` their mean spend per repeat purchase day.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import betaln, digamma, gammaln, hyp2f1

from retail_seg.core.features import invoices_source
from retail_seg.core.frames import merge_one_to_one
from retail_seg.core.tables import CUSTOMER_FEATURES, CUSTOMER_VALUE, VALUE_MODELS
from retail_seg.core.warehouse import build_candidate_from_frame

DAYS_PER_WEEK = 7.0


@dataclass(frozen=True)
class BgNbd:
    """BG/NBD parameters: purchase rates Gamma(r, α) while active, drop-out probability Beta(a, b)."""

    r: float
    alpha: float
    a: float
    b: float

    def p_alive(self, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
        """The probability each customer is still active at T, given x repeat purchases, the last at t_x."""
        x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
        odds = np.where(
            x > 0,
            self.a
            / (self.b + np.maximum(x, 1) - 1)
            * ((self.alpha + T) / (self.alpha + t_x)) ** (self.r + x),
            0.0,
        )
        return 1.0 / (1.0 + odds)

    def expected_purchases(self, t: float, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
        """Expected purchases in the next `t` weeks, given each customer's history."""
        [expected] = self.expected_purchases_within([t], x, t_x, T)
        return expected

    def expected_purchases_within(
        self, horizons: list[float], x: np.ndarray, t_x: np.ndarray, T: np.ndarray
    ) -> list[np.ndarray]:
        """Expected purchases in the next `t` weeks for each `t` of `horizons`, given each history."""
        x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        # The hypergeometric term depends on x and T alone: once per distinct pair, not per customer.
        pairs, index = _distinct(x, T)
        n, since = pairs.T
        scale = (a + b + x - 1) / (a - 1) * self.p_alive(x, t_x, T)
        expected = []
        for t in horizons:
            z = t / (alpha + since + t)
            term = ((alpha + since) / (alpha + since + t)) ** (r + n) * hyp2f1(r + n, b + n, a + b + n - 1, z)
            expected.append(scale * (1.0 - term[index]))
        return expected


@dataclass(frozen=True)
class GammaGamma:
    """Gamma-Gamma parameters: spend per purchase Gamma(p, ν), ν ~ Gamma(q, γ) across customers."""

    p: float
    q: float
    gamma: float

    def expected_spend(self, x: np.ndarray, m_x: np.ndarray) -> np.ndarray:
        """Each customer's expected spend per purchase: their mean shrunk towards the population's."""
        x, m_x = np.asarray(x, dtype=float), np.nan_to_num(np.asarray(m_x, dtype=float))
        return (self.gamma + x * m_x) * self.p / (self.p * x + self.q - 1)

    @property
    def population_mean(self) -> float:
        return self.p * self.gamma / (self.q - 1)


def _distinct(*columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of `columns` side by side, and each row's index among them. Each column is coded
    by its distinct values and the codes combined into one integer (a one-dimensional sort: far faster
    than sorting rows)."""
    values, key = [], np.zeros(len(columns[0]), dtype=np.int64)
    for column in columns:
        distinct, codes = np.unique(column, return_inverse=True)
        values.append(distinct)
        key = key * len(distinct) + codes.reshape(-1)
    keys, index = np.unique(key, return_inverse=True)
    rows = np.empty((len(keys), len(columns)))
    for j in range(len(columns) - 1, -1, -1):
        keys, codes = np.divmod(keys, len(values[j]))
        rows[:, j] = values[j][codes]
    return rows, index.reshape(-1)


@dataclass(frozen=True)
class _Histories:
    """Customers as BG/NBD's likelihood sees them. Histories are counted in days, so many customers share
    the same (x, t_x, T): each distinct history is evaluated once, weighted by its customers; the terms
    of a customer still alive (which depend on x and T alone) and of one who dropped out (x and t_x) once
    per distinct pair, and those of x alone once per distinct count."""

    weight: np.ndarray  # customers per distinct history
    alive: np.ndarray  # distinct (x, T)
    alive_index: np.ndarray  # each history's (x, T)
    dropped: np.ndarray  # distinct (x, t_x)
    dropped_index: np.ndarray
    counts: np.ndarray  # distinct x
    alive_count: np.ndarray  # each (x, T)'s x among them
    dropped_count: np.ndarray

    @classmethod
    def of(cls, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> _Histories:
        histories, index = _distinct(x, t_x, T)
        weight = np.bincount(index, minlength=len(histories)).astype(float)
        alive, alive_index = _distinct(histories[:, 0], histories[:, 2])
        dropped, dropped_index = _distinct(histories[:, 0], histories[:, 1])
        counts = np.unique(histories[:, 0])
        return cls(
            weight,
            alive,
            alive_index,
            dropped,
            dropped_index,
            counts,
            np.searchsorted(counts, alive[:, 0]),
            np.searchsorted(counts, dropped[:, 0]),
        )


def bgnbd_log_likelihood(params: np.ndarray, histories: _Histories) -> np.ndarray:
    """Each distinct history's log-likelihood under BG/NBD (r, α, a, b)."""
    r, alpha, a, b = params
    n = histories.counts
    common = gammaln(r + n) - gammaln(r) + r * np.log(alpha) - betaln(a, b)
    still = (common + betaln(a, b + n))[histories.alive_count]
    gone = (common + betaln(a + 1, b + np.maximum(n, 1) - 1))[histories.dropped_count]
    (x, T), (x_d, t_x) = histories.alive.T, histories.dropped.T
    alive = still - (r + x) * np.log(alpha + T)
    dropped = np.where(x_d > 0, gone - (r + x_d) * np.log(alpha + t_x), -np.inf)
    return np.logaddexp(alive[histories.alive_index], dropped[histories.dropped_index])


@dataclass(frozen=True)
class _Spends:
    """Repeat buyers as Gamma-Gamma's likelihood sees them: what depends on the data alone computed once,
    and the terms of x alone per distinct count (a few hundred at most)."""

    x: np.ndarray
    log_m: np.ndarray
    spent: np.ndarray  # x * m_x
    counts: np.ndarray  # distinct x
    index: np.ndarray

    @classmethod
    def of(cls, x: np.ndarray, m_x: np.ndarray) -> _Spends:
        counts, index = np.unique(x, return_inverse=True)
        return cls(x, np.log(m_x), x * m_x, counts, index.reshape(-1))


def gamma_gamma_log_likelihood(params: np.ndarray, spends: _Spends) -> tuple[float, np.ndarray]:
    """The repeat buyers' total log-likelihood of their mean spends under Gamma-Gamma (p, q, γ), and its
    gradient in the log parameters."""
    p, q, gamma = params
    n, x, index = spends.counts, spends.x, spends.index
    log_total = np.log(gamma + spends.spent)
    per_count = (gammaln(p * n + q) - gammaln(p * n) + p * n * np.log(n))[index]
    value = (
        per_count.sum()
        + len(x) * (q * np.log(gamma) - gammaln(q))
        + ((p * x - 1) * spends.log_m).sum()
        - ((p * x + q) * log_total).sum()
    )
    both, alone = digamma(p * n + q)[index], digamma(p * n)[index]
    d_p = (x * (both - alone + np.log(n)[index] + spends.log_m - log_total)).sum()
    d_q = (both - log_total).sum() + len(x) * (np.log(gamma) - digamma(q))
    d_gamma = len(x) * q / gamma - ((p * x + q) / (gamma + spends.spent)).sum()
    return float(value), np.array([d_p, d_q, d_gamma]) * params


# Log parameters stay within e^±12: a data set that wants a parameter beyond it (no one ever drops out,
# say) gets the bound, not a search that wanders for minutes.
_LOG_BOUND = 12.0


def _fit(negative_log_likelihood, start: np.ndarray, gradient: bool = False) -> np.ndarray:
    """Maximum likelihood over log parameters (so every parameter stays positive) from `start`;
    `negative_log_likelihood` gives its gradient in the log parameters too when `gradient`."""
    bounds = [(-_LOG_BOUND, _LOG_BOUND)] * len(start)
    result = minimize(
        lambda logs: negative_log_likelihood(np.exp(logs)),
        np.log(start),
        method="L-BFGS-B",
        jac=gradient,
        bounds=bounds,
        options={"ftol": 1e-12, "gtol": 1e-8, "maxiter": 2_000},
    )
    if not np.all(np.isfinite(result.x)):
        raise ValueError(f"the fit did not converge: {result.message}")
    return np.exp(result.x)


def fit_bgnbd(x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> BgNbd:
    """BG/NBD by maximum likelihood, from r = α = a = b = 1."""
    x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
    # Scaling time keeps α near 1 whatever the unit, so one starting point suits every data set.
    scale = float(np.mean(T)) or 1.0
    histories = _Histories.of(x, t_x / scale, T / scale)

    def negative(params: np.ndarray) -> float:
        value = -(bgnbd_log_likelihood(params, histories) * histories.weight).sum()
        return float(value) if np.isfinite(value) else 1e300

    r, alpha, a, b = _fit(negative, np.ones(4))
    return BgNbd(r=float(r), alpha=float(alpha * scale), a=float(a), b=float(b))


def fit_gamma_gamma(x: np.ndarray, m_x: np.ndarray) -> GammaGamma:
    """Gamma-Gamma by maximum likelihood over repeat buyers with a positive mean spend, from p = q = γ = 1
    on spend scaled to a mean of one."""
    x, m_x = np.asarray(x, dtype=float), np.asarray(m_x, dtype=float)
    keep = (x > 0) & (m_x > 0)
    if keep.sum() < 2:
        raise ValueError("Gamma-Gamma needs at least two repeat buyers with a positive spend")
    x, m_x = x[keep], m_x[keep]
    scale = float(np.mean(m_x))
    spends = _Spends.of(x, m_x / scale)

    def negative(params: np.ndarray) -> tuple[float, np.ndarray]:
        value, gradient = gamma_gamma_log_likelihood(params, spends)
        if not (np.isfinite(value) and np.all(np.isfinite(gradient))):
            return 1e300, np.zeros(3)
        return -value, -gradient

    p, q, gamma = _fit(negative, np.ones(3), gradient=True)
    return GammaGamma(p=float(p), q=float(q), gamma=float(gamma * scale))


# A customer as BG/NBD and Gamma-Gamma count them, from lines (customer_id, invoice_date, line_total) up to
# $as_of: purchase days, not invoices (two orders on a day are one purchase), spend per day net of returns.
_SUMMARY_SQL = """
    WITH days AS (
        SELECT customer_id, CAST(invoice_date AS DATE) AS day, sum(line_total) AS spend
        FROM ({lines})
        WHERE CAST(invoice_date AS DATE) <= $as_of
        GROUP BY ALL
    ),
    firsts AS (SELECT customer_id, min(day) AS first_day FROM days GROUP BY customer_id)
    SELECT customer_id,
           count(*) - 1 AS x,
           date_diff('day', first_day, max(day)) / 7.0 AS t_x,
           date_diff('day', first_day, $as_of) / 7.0 AS T,
           CAST(avg(spend) FILTER (WHERE day > first_day) AS DOUBLE) AS m_x
    FROM days JOIN firsts USING (customer_id)
    GROUP BY customer_id, first_day
    ORDER BY customer_id
"""


def purchase_summary(conn, lines_sql: str, as_of) -> pd.DataFrame:
    """Each customer's x, t_x, T (weeks) and m_x from the lines of `lines_sql`, as of `as_of` (a date)."""
    return conn.execute(_SUMMARY_SQL.format(lines=lines_sql), {"as_of": as_of}).df()


# Fewer repeat buyers than this cannot tell a repeat rate or a spread of spend from noise.
MIN_REPEAT_BUYERS = 20


class NotFitted(ValueError):
    """The history cannot support the models: too few repeat buyers, or a fit without a finite forecast."""


@dataclass(frozen=True)
class ValueSettings:
    """What the value of a customer is computed over: a forecast horizon, a discount rate and a margin."""

    horizon_days: int = 90
    lifetime_months: int = 12
    annual_discount_rate: float = 0.10
    margin: float = 1.0


def customer_value(
    summary: pd.DataFrame, settings: ValueSettings = ValueSettings()
) -> tuple[pd.DataFrame, BgNbd, GammaGamma]:
    """Per customer: p_alive, churn risk, expected purchases over the horizon, expected spend per
    purchase and discounted lifetime value; with the two fitted models.

    `summary` has customer_id, x, t_x and T (weeks), and m_x (mean spend per repeat purchase day). The
    lifetime value sums, month by month over `lifetime_months`, the expected purchases of that month times
    the expected spend and the margin, discounted at the monthly rate of `annual_discount_rate`.
    """
    x, t_x, T = (summary[c].to_numpy(dtype=float) for c in ("x", "t_x", "T"))
    repeat_buyers = int(((x > 0) & (summary["m_x"].fillna(0).to_numpy() > 0)).sum())
    if repeat_buyers < MIN_REPEAT_BUYERS:
        raise NotFitted(
            f"{repeat_buyers:,} customers bought again (with a positive spend); the models need at least "
            f"{MIN_REPEAT_BUYERS} to estimate how often customers come back and what they spend"
        )
    purchases = fit_bgnbd(x, t_x, T)
    spend = fit_gamma_gamma(x, summary["m_x"].to_numpy(dtype=float))
    if spend.q <= 1:
        raise NotFitted(
            f"Gamma-Gamma's q = {spend.q:.3g} is at most 1: spend varies so much between customers that its "
            "expected value is unbounded"
        )
    p_alive = purchases.p_alive(x, t_x, T)
    monthly = (1 + settings.annual_discount_rate) ** (1 / 12) - 1
    weeks_per_month = 365.25 / 12 / DAYS_PER_WEEK
    per_purchase = np.where(
        (x > 0) & (summary["m_x"].fillna(0).to_numpy() > 0),
        spend.expected_spend(x, summary["m_x"].to_numpy(dtype=float)),
        spend.population_mean,
    )
    months = range(1, settings.lifetime_months + 1)
    horizon, *cumulatives = purchases.expected_purchases_within(
        [settings.horizon_days / DAYS_PER_WEEK, *(month * weeks_per_month for month in months)], x, t_x, T
    )
    value, before = np.zeros(len(summary)), np.zeros(len(summary))
    for month, cumulative in zip(months, cumulatives, strict=True):
        value += (cumulative - before) * per_purchase * settings.margin / (1 + monthly) ** month
        before = cumulative
    if not (np.isfinite(value).all() and np.isfinite(p_alive).all()):
        raise NotFitted(f"the fitted models ({purchases}, {spend}) give non-finite forecasts")
    frame = pd.DataFrame(
        {
            "customer_id": summary["customer_id"].to_numpy(),
            "p_alive": p_alive,
            "churn_risk": 1 - p_alive,
            "expected_purchases": horizon,
            "expected_order_value": per_purchase,
            "clv": value,
        }
    )
    return frame, purchases, spend


@dataclass(frozen=True)
class ValueBuild:
    """What a value build fitted and found; without models, why not."""

    purchases: BgNbd | None
    spend: GammaGamma | None
    customers: int
    repeat_buyers: int
    not_fitted: str = ""


NO_HISTORY = (
    "the source is a customer table, one row per customer: lifetime value and churn risk need each "
    "customer's purchases over time, which it does not hold"
)


def _without_value(
    conn, summary: pd.DataFrame, settings: ValueSettings, repeat_buyers: int, why: str
) -> ValueBuild:
    """Every customer keeps a row, with no value: the segments go ahead, named without churn risk."""
    empty = {
        c: np.nan for c in ("p_alive", "churn_risk", "expected_purchases", "expected_order_value", "clv")
    }
    build_candidate_from_frame(conn, CUSTOMER_VALUE, summary.assign(**empty))
    settings_rows = [("settings", name, float(v)) for name, v in settings.__dict__.items()]
    build_candidate_from_frame(
        conn, VALUE_MODELS, pd.DataFrame(settings_rows, columns=["model", "parameter", "value"])
    )
    return ValueBuild(None, None, len(summary), repeat_buyers, why)


def build_customer_value(conn, settings: ValueSettings = ValueSettings()) -> ValueBuild:
    """Build the candidates of `marts.customer_value` and `marts.value_models` for every featured customer,
    from the staged lines up to the features' as-of date."""
    from retail_seg.core.customer_tables import history_grain

    [(as_of,)] = conn.execute(f"SELECT max(as_of) FROM {CUSTOMER_FEATURES}").fetchall()
    if history_grain(conn) == "customers":
        summary = conn.execute(
            'SELECT customer_id, NULL::DOUBLE AS x, NULL::DOUBLE AS t_x, NULL::DOUBLE AS "T", '
            f"NULL::DOUBLE AS m_x FROM {CUSTOMER_FEATURES}"
        ).df()
        return _without_value(conn, summary, settings, 0, NO_HISTORY)
    # A day's spend is the sum of its invoices' sums: the history's invoices, a tenth of its lines.
    lines = (
        f"SELECT customer_id, invoice_date, net AS line_total FROM {invoices_source(conn)} "
        f"SEMI JOIN {CUSTOMER_FEATURES} USING (customer_id)"
    )
    summary = purchase_summary(conn, lines, as_of)
    repeat_buyers = int((summary["x"] > 0).sum())
    try:
        value, purchases, spend = customer_value(summary, settings)
    except NotFitted as why:
        return _without_value(conn, summary, settings, repeat_buyers, str(why))
    build_candidate_from_frame(conn, CUSTOMER_VALUE, merge_one_to_one(summary, value))
    parameters = [
        *(("bgnbd", name, value) for name, value in purchases.__dict__.items()),
        *(("gamma_gamma", name, value) for name, value in spend.__dict__.items()),
        *(("settings", name, float(value)) for name, value in settings.__dict__.items()),
    ]
    build_candidate_from_frame(
        conn, VALUE_MODELS, pd.DataFrame(parameters, columns=["model", "parameter", "value"])
    )
    return ValueBuild(purchases, spend, len(summary), repeat_buyers)
