"""Feature definitions for the featctl driver feature store (Feast 0.67.0).

Data files (relative to this directory, created by featctl's sample data step
or copied in): data/driver_stats.parquet and
data/driver_stats_with_productivity.parquet.
"""

from datetime import timedelta

from feast import (
    Entity,
    FeatureService,
    FeatureView,
    Field,
    FileSource,
    PushSource,
    RequestSource,
)
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Float32, Float64, Int64
from feast.value_type import ValueType

DRIVER_STATE_TAGS = {"group": "driver-state metrics", "team": "driver_performance"}

driver = Entity(
    name="driver",
    join_keys=["driver_id"],
    value_type=ValueType.INT64,
    description="A driver, keyed by driver_id",
)

# Relative paths are resolved against the repo directory (RepoConfig.repo_path).
driver_stats_source = FileSource(
    name="driver_hourly_stats_source",
    path="data/driver_stats.parquet",
    timestamp_field="event_timestamp",
    created_timestamp_column="created",
    description="Hourly driver statistics",
)

# Fresh rows can be pushed (online and/or appended to the parquet file) through
# this source; driver_quality_metrics reads from it, so pushes reach the
# linear-combination on-demand view. Materialization uses its batch source.
driver_stats_push_source = PushSource(
    name="driver_stats_push_source",
    batch_source=driver_stats_source,
)

driver_hourly_stats = FeatureView(
    name="driver_hourly_stats",
    entities=[driver],
    ttl=timedelta(days=1),
    schema=[
        Field(name="conv_rate", dtype=Float32),
        Field(name="acc_rate", dtype=Float32),
        Field(name="avg_daily_trips", dtype=Int64, description="Average daily trips"),
    ],
    online=True,
    source=driver_stats_source,
    tags={"team": "driver_performance"},
)

driver_quality_metrics = FeatureView(
    name="driver_quality_metrics",
    entities=[driver],
    ttl=timedelta(days=2),
    schema=[
        Field(
            name="conv_rate",
            dtype=Float32,
            description="Conversion rate of the driver (0..1)",
            tags={"group": "driver-state metrics"},
        ),
        Field(
            name="acc_rate",
            dtype=Float32,
            description="Acceptance rate of the driver (0..1)",
            tags={"group": "driver-state metrics"},
        ),
    ],
    online=True,
    source=driver_stats_push_source,
    description="Driver-state metrics: conversion and acceptance rates",
    tags=DRIVER_STATE_TAGS,
)

linear_coefficients = RequestSource(
    name="linear_coefficients",
    schema=[
        Field(name="conv_rate_coef", dtype=Float64),
        Field(name="acc_rate_coef", dtype=Float64),
    ],
    description="Weights supplied with each request",
)


# The UDF is stored in the registry as source text and re-executed by Feast with
# only pd/np in scope, so it must be self-contained (no module-level helpers,
# no non-builtin annotations).
#
# Batch python mode (singleton=False): the UDF gets a dict of column lists,
# both online (SDK and feature server) and offline (get_historical_features).
# singleton=True is NOT used: in Feast 0.67 the online path then transforms
# only the first entity row (a 3-row request returns 1 value), and the offline
# path still passes lists. The UDF nevertheless also accepts a row of scalars.
# A missing value (unknown driver, expired TTL: None or NaN) yields None.
@on_demand_feature_view(
    sources=[driver_quality_metrics, linear_coefficients],
    schema=[Field(name="linear_combination", dtype=Float64)],
    mode="python",
    singleton=False,
    description="conv_rate_coef * conv_rate + acc_rate_coef * acc_rate",
    tags=DRIVER_STATE_TAGS,
)
def driver_activity_rates_linear_combination_fv(inputs: dict) -> dict:
    def combine(conv_rate, acc_rate, conv_rate_coef, acc_rate_coef):
        values = (conv_rate, acc_rate, conv_rate_coef, acc_rate_coef)
        if any(v is None or v != v for v in values):  # None or NaN
            return None
        return float(conv_rate_coef) * float(conv_rate) + float(acc_rate_coef) * float(acc_rate)

    columns = [
        inputs.get("conv_rate"),
        inputs.get("acc_rate"),
        inputs.get("conv_rate_coef"),
        inputs.get("acc_rate_coef"),
    ]
    if any(isinstance(c, (list, tuple)) for c in columns):
        size = max(len(c) for c in columns if isinstance(c, (list, tuple)))
        columns = [list(c) if isinstance(c, (list, tuple)) else [c] * size for c in columns]
        return {"linear_combination": [combine(*row) for row in zip(*columns)]}
    return {"linear_combination": combine(*columns)}


driver_activity_rates_linear_combination = FeatureService(
    name="driver_activity_rates_linear_combination",
    features=[driver_quality_metrics, driver_activity_rates_linear_combination_fv],
    description="Driver-state metrics plus their weighted linear combination",
    tags=DRIVER_STATE_TAGS,
)

driver_stats_with_productivity_source = FileSource(
    name="driver_hourly_stats_source_with_productivity",
    path="data/driver_stats_with_productivity.parquet",
    timestamp_field="event_timestamp",
    created_timestamp_column="created",
    description="Hourly driver statistics with derived productivity",
)

driver_productivity_metrics = FeatureView(
    name="driver_productivity_metrics",
    entities=[driver],
    ttl=timedelta(days=7),
    schema=[
        Field(
            name="productivity",
            dtype=Float64,
            description="conv_rate * acc_rate * avg_daily_trips",
        ),
    ],
    online=True,
    source=driver_stats_with_productivity_source,
    tags={"team": "driver_performance"},
)
