"""Expected answers computed independently of featctl and Feast, with pandas."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pandas as pd


def load(path: Path) -> pd.DataFrame:
    df = pd.read_parquet(path)
    df["event_timestamp"] = pd.to_datetime(df["event_timestamp"], utc=True)
    df["created"] = pd.to_datetime(df["created"], utc=True)
    return df


def latest(df: pd.DataFrame, driver: int) -> pd.Series | None:
    """The row the online store holds after materializing everything: the newest event, newest created."""
    rows = df[df.driver_id == driver].sort_values(["event_timestamp", "created"])
    return None if rows.empty else rows.iloc[-1]


def as_of(df: pd.DataFrame, driver: int, ts: pd.Timestamp, ttl: timedelta) -> pd.Series | None:
    """Point-in-time: the newest row at or before ts and not older than the TTL."""
    rows = df[(df.driver_id == driver) & (df.event_timestamp <= ts) & (df.event_timestamp >= ts - ttl)]
    rows = rows.sort_values(["event_timestamp", "created"])
    return None if rows.empty else rows.iloc[-1]
