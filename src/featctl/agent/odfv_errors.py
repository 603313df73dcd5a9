"""An on-demand view that raises says which view and which row (#24 item 8).

Feast 0.67 lets the exception of a view's transformation through as it is
(``ZeroDivisionError: division by zero``): with several on-demand views in a
request and thousands of rows nobody can tell which view failed on what. In
every Feast process featctl runs (the feature server, the agent's commands)
``OnDemandFeatureView.transform_arrow`` and ``transform_dict`` now re-raise
as ``on-demand view NAME failed on row I (k=v, ...): ZeroDivisionError: ...``;
the row is found by running the view again on each row alone (only after a
failure, on at most ``MAX_ROWS`` rows), its values are the inputs the view
was given.
"""

from __future__ import annotations

from typing import Any

#: Rows tried one by one to find the one that fails.
MAX_ROWS = 1000
#: Input columns shown, and the width of each value.
MAX_COLUMNS, MAX_VALUE = 8, 40


class OnDemandViewError(ValueError):
    """A view's transformation failed; the message names the view and the row.
    A ValueError: Feast's feature server answers it with its text."""


def _value(v: Any) -> str:
    text = repr(v.as_py() if hasattr(v, "as_py") else v)
    return text if len(text) <= MAX_VALUE else text[: MAX_VALUE - 3] + "..."


def _row_text(columns: dict[str, list[Any]], i: int) -> str:
    names = [c for c in columns if not c.startswith("__")][:MAX_COLUMNS]
    return ", ".join(f"{c}={_value(columns[c][i])}" for c in names)


def _failing_row(run_one: Any, n: int) -> int | None:
    for i in range(min(n, MAX_ROWS)):
        try:
            run_one(i)
        except Exception:
            return i
    return None


def describe(name: str, exc: BaseException, columns: dict[str, list[Any]], run_one: Any) -> str:
    n = len(next(iter(columns.values()), []))
    row = _failing_row(run_one, n) if n > 1 else (0 if n == 1 else None)
    cause = f"{type(exc).__name__}: {exc}".strip()
    if row is None:
        return f"on-demand view {name} failed on {n} row(s): {cause}"
    return f"on-demand view {name} failed on row {row} ({_row_text(columns, row)}): {cause}"


def name_failures() -> None:
    """Patch OnDemandFeatureView's two transform entry points (idempotent)."""
    from feast.on_demand_feature_view import OnDemandFeatureView as View

    if getattr(View.transform_arrow, "__featctl__", False):
        return
    arrow, mapping = View.transform_arrow, View.transform_dict

    def transform_arrow(self: Any, pa_table: Any, full_feature_names: bool = False) -> Any:
        try:
            return arrow(self, pa_table, full_feature_names)
        except OnDemandViewError:
            raise
        except Exception as exc:
            cols = {c: pa_table.column(c).to_pylist() for c in pa_table.column_names}
            msg = describe(self.name, exc, cols, lambda i: arrow(self, pa_table.slice(i, 1), full_feature_names))
            raise OnDemandViewError(msg) from exc

    def transform_dict(self: Any, feature_dict: dict[str, Any]) -> Any:
        try:
            return mapping(self, feature_dict)
        except OnDemandViewError:
            raise
        except Exception as exc:
            lists = {k: v for k, v in feature_dict.items() if isinstance(v, list)}
            if self.singleton or not lists or len({len(v) for v in lists.values()}) != 1:
                cols = {k: [v] for k, v in feature_dict.items()}
                raise OnDemandViewError(describe(self.name, exc, cols, lambda i: None)) from exc

            def one(i: int) -> Any:
                return mapping(self, {k: (v[i : i + 1] if k in lists else v) for k, v in feature_dict.items()})

            raise OnDemandViewError(describe(self.name, exc, lists, one)) from exc

    infer = View.infer_features

    def infer_features(self: Any) -> None:
        try:
            infer(self)
        except OnDemandViewError:
            raise
        except Exception as exc:
            if type(exc).__module__.startswith("feast"):
                raise  # Feast's own inference errors name the view already
            raise OnDemandViewError(
                f"on-demand view {self.name} failed on the sample inputs feast apply runs it on to infer its schema: "
                f"{type(exc).__name__}: {exc}"
            ) from exc

    transform_arrow.__featctl__ = True  # type: ignore[attr-defined]
    View.infer_features = infer_features
    View.transform_arrow = transform_arrow
    View.transform_dict = transform_dict
