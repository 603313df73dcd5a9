"""The one result shape for commands that print rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Table:
    columns: list[str]
    rows: list[list[Any]]
    title: str | None = None
    #: Things the user should know about the rows (to stderr, never to stdout).
    notes: list[str] = field(default_factory=list)

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row)) for row in self.rows]

    @classmethod
    def from_records(cls, records: list[dict[str, Any]], title: str | None = None) -> Table:
        columns: list[str] = []
        for r in records:
            for k in r:
                if k not in columns:
                    columns.append(k)
        return cls(columns, [[r.get(c) for c in columns] for r in records], title)
