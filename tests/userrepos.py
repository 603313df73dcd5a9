"""Three Feast repositories written the way users outside the project write
them (issue #15), and the pandas references their answers are checked against.

* ``credit``: credit scoring with string keys, a composite key
  (applicant_id, bureau), rows with the same event time that differ in their
  created time (the later created row comes first in the file), nullable Int64
  and UnixTimestamp features, a ``_coef`` score view.
* ``events``: a PushSource over a FileSource whose path is built with
  ``os.path.abspath(__file__)`` (the pattern of Feast's own templates), with a
  feature of (almost) every type and an ``Array(Float32)`` embedding.
* ``churn``: a ``_coef`` score view beside an on-demand view that is not a
  score (its request field is not a weight), and a feature service.

Each ``write_*`` writes the repository under ``root/<name>`` with its data
relative to a fixed ``now`` and returns the repository path. ``point_in_time``
is the reference join: for each entity row, the source row of the same keys
with the greatest event time not after the row's time and not older than the
view's TTL, ties broken by the created time (latest wins) and then by the row
order in the source (last wins), one output row per entity row, in order.
"""

from __future__ import annotations

import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd

YAML = """\
project: {project}
registry: data/registry.db
provider: local
online_store:
  type: sqlite
  path: data/online.db
offline_store:
  type: file
entity_key_serialization_version: 3
"""


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)


def _write(root: Path, name: str, project: str, definitions: str) -> Path:
    repo = root / name
    (repo / "data").mkdir(parents=True, exist_ok=True)
    (repo / "feature_store.yaml").write_text(YAML.format(project=project))
    (repo / "definitions.py").write_text(textwrap.dedent(definitions).lstrip())
    return repo


# --- credit: string and composite keys, same-time rows, nullable Int64 -------------------------

CREDIT_DEFS = '''
from datetime import timedelta

from feast import Entity, FeatureService, FeatureView, Field, FileSource, RequestSource, ValueType
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Float64, Int64, UnixTimestamp

applicant = Entity(name="applicant", join_keys=["applicant_id"], value_type=ValueType.STRING)
bureau = Entity(name="bureau", join_keys=["bureau"], value_type=ValueType.STRING)

profiles = FileSource(
    name="profiles",
    path="data/profiles.parquet",
    timestamp_field="event_ts",
    created_timestamp_column="created_ts",
)
credit_profile = FeatureView(
    name="credit_profile",
    entities=[applicant],
    ttl=timedelta(days=30),
    schema=[
        Field(name="income", dtype=Float64),
        Field(name="debt", dtype=Float64),
        Field(name="open_loans", dtype=Int64),
        Field(name="last_payment", dtype=UnixTimestamp),
    ],
    source=profiles,
)

reports = FileSource(
    name="reports",
    path="data/reports.parquet",
    timestamp_field="event_ts",
    created_timestamp_column="created_ts",
)
bureau_reports = FeatureView(
    name="bureau_reports",
    entities=[applicant, bureau],
    ttl=timedelta(days=90),
    schema=[
        Field(name="delinquencies", dtype=Int64),
        Field(name="credit_limit", dtype=Float64),
    ],
    source=reports,
)

risk_weights = RequestSource(
    name="risk_weights",
    schema=[Field(name="income_coef", dtype=Float64), Field(name="debt_coef", dtype=Float64)],
)


@on_demand_feature_view(
    sources=[credit_profile, risk_weights],
    schema=[Field(name="risk_score", dtype=Float64)],
    mode="python",
)
def risk_score(inputs):
    return {
        "risk_score": [
            i * ic + d * dc
            for i, d, ic, dc in zip(inputs["income"], inputs["debt"], inputs["income_coef"], inputs["debt_coef"])
        ]
    }


credit_model = FeatureService(name="credit_model", features=[credit_profile, bureau_reports])
'''

CREDIT_APPLICANTS = ["A-001", "A-002", "007", "B-10", "b-10"]
BUREAUS = ["equifax", "experian"]
CREDIT_PROFILE = ["income", "debt", "open_loans", "last_payment"]
CREDIT_REPORT = ["delinquencies", "credit_limit"]


def write_credit(root: Path, now: datetime | None = None) -> Path:
    """Profiles every 2 days over 60 days per applicant; at three instants an
    applicant has two rows with the same event time, the later created one
    first in the file; one applicant's last rows are older than the TTL."""
    now = now or _now()
    rng = np.random.default_rng(15)
    rows = []
    for a_i, applicant in enumerate(CREDIT_APPLICANTS):
        last = 0 if applicant != "b-10" else 40  # b-10: nothing within 30 days of now
        for day in range(60, last - 1, -2):
            ts = now - timedelta(days=day, hours=a_i)
            rows.append(
                {
                    "applicant_id": applicant,
                    "income": round(float(rng.uniform(1000, 9000)), 2),
                    "debt": round(float(rng.uniform(0, 5000)), 2),
                    "open_loans": int(rng.integers(0, 6)),
                    "last_payment": ts - timedelta(days=int(rng.integers(1, 20))),
                    "event_ts": ts,
                    "created_ts": ts + timedelta(minutes=5),
                }
            )
    profiles = pd.DataFrame(rows)
    # Same event time, later created time, placed before the row it supersedes.
    ties = []
    for applicant, day in (("A-001", 10), ("007", 4), ("B-10", 0)):
        a_i = CREDIT_APPLICANTS.index(applicant)
        ts = now - timedelta(days=day, hours=a_i)
        ties.append(
            {
                "applicant_id": applicant,
                "income": 77777.0 + day,
                "debt": 1.0 + day,
                "open_loans": 9,
                "last_payment": ts - timedelta(days=1),
                "event_ts": ts,
                "created_ts": ts + timedelta(hours=3),
            }
        )
    profiles = pd.concat([pd.DataFrame(ties), profiles], ignore_index=True)
    profiles["open_loans"] = profiles["open_loans"].astype("int64")
    repo = _write(root, "credit", "credit", CREDIT_DEFS)
    profiles.to_parquet(repo / "data" / "profiles.parquet", index=False)

    reports = []
    for applicant in CREDIT_APPLICANTS:
        for b_i, bureau in enumerate(BUREAUS):
            for day in (80, 45, 20, 3):
                ts = now - timedelta(days=day, hours=b_i)
                reports.append(
                    {
                        "applicant_id": applicant,
                        "bureau": bureau,
                        # nullable: a bureau that reported no count
                        "delinquencies": pd.NA if (day == 3 and bureau == "experian") else int(rng.integers(0, 4)),
                        "credit_limit": round(float(rng.uniform(500, 20000)), 2),
                        "event_ts": ts,
                        "created_ts": ts,
                    }
                )
    frame = pd.DataFrame(reports)
    frame["delinquencies"] = frame["delinquencies"].astype("Int64")
    # A same-time pair on the composite key: the later created row first.
    tie = frame[(frame.applicant_id == "A-002") & (frame.bureau == "equifax")].iloc[[-1]].copy()
    tie["delinquencies"] = pd.array([42], dtype="Int64")
    tie["credit_limit"] = 4242.0
    tie["created_ts"] = tie["created_ts"] + timedelta(minutes=30)
    frame = pd.concat([tie, frame], ignore_index=True)
    frame.to_parquet(repo / "data" / "reports.parquet", index=False)
    return repo


# --- events: PushSource, every type, an embedding, an abspath source ------------------------

EVENTS_DEFS = '''
import os
from datetime import timedelta

from feast import Entity, FeatureView, Field, FileSource, PushSource, ValueType
from feast.types import Array, Bool, Float32, Float64, Int32, Int64, String, UnixTimestamp

# As in Feast's own templates: the data path is built from this file's location.
REPO_DIR = os.path.dirname(os.path.abspath(__file__))

user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.INT64)

user_events_source = FileSource(
    name="user_events_source",
    path=os.path.join(REPO_DIR, "data", "user_events.parquet"),
    timestamp_field="event_timestamp",
    created_timestamp_column="created",
)
user_events_push = PushSource(name="user_events_push", batch_source=user_events_source)

user_events = FeatureView(
    name="user_events",
    entities=[user],
    ttl=timedelta(days=7),
    schema=[
        Field(name="clicks", dtype=Int32),
        Field(name="purchases", dtype=Int64),
        Field(name="ctr", dtype=Float32),
        Field(name="revenue", dtype=Float64),
        Field(name="segment", dtype=String),
        Field(name="is_active", dtype=Bool),
        Field(name="last_seen", dtype=UnixTimestamp),
        Field(name="embedding", dtype=Array(Float32)),
        Field(name="tags", dtype=Array(String)),
        Field(name="recent_items", dtype=Array(Int64)),
    ],
    source=user_events_push,
)
'''

EVENT_USERS = [1, 2, 3, 4]
EMBEDDING_DIM = 8


def events_frame(users: list[int], times: list[datetime], seed: int = 6) -> pd.DataFrame:
    """Rows of the events source (one per user per time), typed as the view declares."""
    rng = np.random.default_rng(seed)
    rows = []
    for ts in times:
        for u in users:
            rows.append(
                {
                    "user_id": u,
                    "clicks": int(rng.integers(0, 100)),
                    "purchases": int(rng.integers(0, 10)),
                    "ctr": float(rng.uniform(0, 1)),
                    "revenue": round(float(rng.uniform(0, 500)), 2),
                    "segment": ["new", "loyal", "churning"][int(rng.integers(0, 3))],
                    "is_active": bool(rng.integers(0, 2)),
                    "last_seen": ts - timedelta(minutes=int(rng.integers(1, 600))),
                    "embedding": rng.uniform(-1, 1, EMBEDDING_DIM).astype("float32").tolist(),
                    "tags": [f"t{int(x)}" for x in rng.integers(0, 9, int(rng.integers(0, 4)))],
                    "recent_items": [int(x) for x in rng.integers(1, 10_000, 3)],
                    "event_timestamp": ts,
                    "created": ts,
                }
            )
    return typed_events(pd.DataFrame(rows))


def typed_events(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    frame["clicks"] = frame["clicks"].astype("int32")
    frame["ctr"] = frame["ctr"].astype("float32")
    return frame


def write_events_data(path: Path, frame: pd.DataFrame) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame.reset_index(drop=True), preserve_index=False)
    emb = table.schema.get_field_index("embedding")
    table = table.set_column(emb, "embedding", pa.array(list(frame["embedding"]), type=pa.list_(pa.float32())))
    pq.write_table(table, path)


def write_events(root: Path, now: datetime | None = None) -> Path:
    now = now or _now()
    repo = _write(root, "events", "events", EVENTS_DEFS)
    times = [now - timedelta(days=d) for d in (3, 2, 1)]
    write_events_data(repo / "data" / "user_events.parquet", events_frame(EVENT_USERS, times))
    return repo


# --- churn: a score view beside an on-demand view that is not a score ---------------------

CHURN_DEFS = '''
from datetime import timedelta

import pandas as pd
from feast import Entity, FeatureService, FeatureView, Field, FileSource, RequestSource
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Float64, Int64

customer = Entity(name="customer", join_keys=["customer_id"])

activity = FileSource(name="activity", path="data/activity.parquet", timestamp_field="ts")
customer_activity = FeatureView(
    name="customer_activity",
    entities=[customer],
    ttl=timedelta(days=14),
    schema=[
        Field(name="sessions", dtype=Int64),
        Field(name="tenure_days", dtype=Float64),
        Field(name="support_tickets", dtype=Int64),
    ],
    source=activity,
)

churn_weights = RequestSource(
    name="churn_weights",
    schema=[Field(name="sessions_coef", dtype=Float64), Field(name="support_tickets_coef", dtype=Float64)],
)


@on_demand_feature_view(
    sources=[customer_activity, churn_weights],
    schema=[Field(name="churn_score", dtype=Float64)],
    mode="python",
)
def churn_score(inputs):
    return {
        "churn_score": [
            s * sc + t * tc
            for s, t, sc, tc in zip(
                inputs["sessions"], inputs["support_tickets"], inputs["sessions_coef"], inputs["support_tickets_coef"]
            )
        ]
    }


ratio_params = RequestSource(name="ratio_params", schema=[Field(name="scale", dtype=Float64)])


@on_demand_feature_view(
    sources=[customer_activity, ratio_params],
    schema=[Field(name="sessions_per_day", dtype=Float64)],
    mode="pandas",
)
def activity_ratio(df: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame()
    out["sessions_per_day"] = df["sessions"] / df["tenure_days"] * df["scale"]
    return out


churn_model = FeatureService(name="churn_model", features=[customer_activity, churn_score])
'''

CHURN_CUSTOMERS = [101, 102, 103, 104, 105, 106]


def churn_frame(now: datetime, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for c in CHURN_CUSTOMERS:
        for day in (20, 10, 5, 1):
            rows.append(
                {
                    "customer_id": c,
                    "sessions": int(rng.integers(0, 50)),
                    "tenure_days": float(rng.integers(30, 900)),
                    "support_tickets": int(rng.integers(0, 8)),
                    "ts": now - timedelta(days=day, hours=c % 5),
                }
            )
    return pd.DataFrame(rows)


def write_churn(root: Path, now: datetime | None = None) -> Path:
    now = now or _now()
    repo = _write(root, "churn", "churn", CHURN_DEFS)
    churn_frame(now).to_parquet(repo / "data" / "activity.parquet", index=False)
    return repo


# --- references -----------------------------------------------------------------------------


def point_in_time(
    entities: pd.DataFrame,
    source: pd.DataFrame,
    keys: list[str],
    features: list[str],
    *,
    timestamp: str,
    created: str | None = None,
    ttl: timedelta | None = None,
    entity_timestamp: str = "event_timestamp",
) -> pd.DataFrame:
    """The reference point-in-time join (see the module docstring): ``entities``
    with ``features`` appended, one row per entity row, in order; a row with no
    match gets nulls."""
    ent = entities.reset_index(drop=True).copy()
    ent["__row"] = range(len(ent))
    src = source.reset_index(drop=True).copy()
    src["__order"] = range(len(src))
    ets = pd.to_datetime(ent[entity_timestamp], utc=True)
    merged = ent[["__row", *keys]].assign(__ets=ets).merge(src, on=keys, how="inner")
    sts = pd.to_datetime(merged[timestamp], utc=True)
    ok = sts <= merged["__ets"]
    if ttl is not None and ttl > timedelta(0):
        ok &= sts >= merged["__ets"] - ttl
    merged = merged[ok].assign(__sts=sts[ok])
    order = ["__row", "__sts"] + ([created] if created else []) + ["__order"]
    if created:
        merged[created] = pd.to_datetime(merged[created], utc=True)
    best = merged.sort_values(order, kind="stable").groupby("__row", sort=False).tail(1)
    out = ent.merge(best[["__row", *features]], on="__row", how="left")
    return out.drop(columns="__row")


def credit_reference(repo: Path, entities: pd.DataFrame) -> pd.DataFrame:
    """The credit repository's answer for ``entities`` (with ``income_coef`` and
    ``debt_coef`` columns) by ``point_in_time``: both views and ``risk_score``."""
    profiles = pd.read_parquet(repo / "data" / "profiles.parquet")
    reports = pd.read_parquet(repo / "data" / "reports.parquet")
    want = point_in_time(entities, profiles, ["applicant_id"], CREDIT_PROFILE, timestamp="event_ts",
                         created="created_ts", ttl=timedelta(days=30))
    rep = point_in_time(entities, reports, ["applicant_id", "bureau"], CREDIT_REPORT, timestamp="event_ts",
                        created="created_ts", ttl=timedelta(days=90))
    for c in CREDIT_REPORT:
        want[c] = rep[c]
    want["risk_score"] = want["income"] * want["income_coef"] + want["debt"] * want["debt_coef"]
    return want
