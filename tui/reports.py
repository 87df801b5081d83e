"""Renderings of what an index is and has been: `info` and `versions` tables.

They take the plain dicts the index reports (`describe_index`, `list_versions`)
and only format them: sizes in KB/MB/GB, times as local dates, counts with
thousands separators.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

from rich.table import Table


def human_size(size: int | float | None) -> str:
    """Bytes as B, KB, MB, GB (powers of 1024)."""
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1024
    return f"{value:,.1f} TB"


def human_time(value: Any) -> str:
    """An ISO timestamp or Unix seconds as a local date and time, to the minute."""
    if value in (None, ""):
        return "-"
    try:
        if isinstance(value, (int, float)):
            moment = _dt.datetime.fromtimestamp(float(value), tz=_dt.timezone.utc)
        else:
            moment = _dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except (ValueError, OverflowError, OSError):
        return str(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_dt.timezone.utc)
    return moment.astimezone().strftime("%Y-%m-%d %H:%M")


def info_table(details: dict[str, Any], title: str, wide: bool = False) -> Table:
    """`shoplens info`: one row per fact, the reranker and behaviour spelled out."""
    table = Table(show_header=False, title=title, title_justify="left", pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    model = details.get("model") or {}
    counts = details.get("counts") or {}
    sizes = dict(details.get("size_bytes") or {})
    table.add_row("version", f"{details.get('version')} ({details.get('kind')}, {human_time(details.get('built'))})")
    table.add_row("products", f"{counts.get('products', 0):,} ({counts.get('with_image', 0):,} with an image; "
                              f"{counts.get('rows', 0):,} rows stored)")
    table.add_row("model", f"{model.get('name')} ({details.get('dimensions')} dimensions; weights "
                           f"{model.get('pretrained') or 'default'})")
    table.add_row("vector index", _settings(details.get("vector")))
    table.add_row("lexical index", _settings(details.get("lexical")))
    encoder = details.get("encoder") or {}
    table.add_row("query encoder", str(encoder.get("runtime")) + (f" (exported to {encoder['export']})"
                                                                  if encoder.get("export") else ""))
    total = sizes.pop("total", None)
    table.add_row("size", f"{human_size(total)} (" + ", ".join(f"{k.replace('_', ' ')} {human_size(v)}"
                                                           for k, v in sizes.items()) + ")")
    versions = details.get("versions") or []
    table.add_row("versions kept", ", ".join(str(v) for v in versions) + "  (see `shoplens versions`)")
    if details.get("ranker_predictor"):
        table.add_row("reranker predicts with", str(details["ranker_predictor"]))
    for key, value in ranker_rows(details.get("ranker")):
        table.add_row(key, value)
    for key, value in behaviour_rows(details.get("behaviour")):
        table.add_row(key, value)
    if wide:
        table.add_row("software", _settings(details.get("software")))
        table.add_row("change", _settings(details.get("change")))
    return table


def ranker_rows(ranker: Any) -> list[tuple[str, str]]:
    """The reranker: where it learned from, on how many queries, and how it did on held-out queries."""
    if not isinstance(ranker, dict):
        return [("reranker", str(ranker or "none (results keep the fused order)"))]
    source = str(ranker.get("source") or "")
    origin, _, name = source.partition(":")
    learned = {"judgments": f"judgments in {name}", "events": f"behaviour events in {name} (click model labels)"}
    queries = ranker.get("queries") or {}
    rows = [("reranker", f"XGBoost LambdaMART trained {human_time(ranker.get('trained_at'))} from "
                         f"{learned.get(origin, source or 'unknown data')}"),
            ("  training queries", f"{queries.get('train', 0):,} (held out for validation: "
                                   f"{queries.get('validation', 0):,})")]
    metrics = ranker.get("validation") or {}
    if metrics:
        rows.append(("  held-out metrics", ", ".join(f"{k} {v:.3f}" if isinstance(v, (int, float)) else f"{k} {v}"
                                                    for k, v in metrics.items())))
    if ranker.get("query_kinds"):
        rows.append(("  query kinds reranked", f"{', '.join(ranker['query_kinds'])} (others keep the fused order)"))
    gain = (ranker.get("params") or {}).get("gain", "exponential")  # models trained before --gain used 2^grade - 1
    rows.append(("  training run", f"best round {ranker.get('best_iteration')}, device {ranker.get('device')}, behaviour "
                            f"features {'used' if ranker.get('use_behaviour') else 'not used'}, {gain} gain"))
    return rows


def behaviour_rows(behaviour: Any) -> list[tuple[str, str]]:
    """Behaviour folded into the index: totals by event type, how much of the catalog it covers, when."""
    if not isinstance(behaviour, dict):
        return [("behaviour", str(behaviour or "none (see `shoplens events`)"))]
    totals = behaviour.get("totals") or {}
    kinds = ", ".join(f"{int(v):,} {k}s" for k, v in totals.items())
    return [("behaviour", f"{int(behaviour.get('events') or 0):,} events ({kinds})"),
            ("  coverage", f"{int(behaviour.get('products_with_events') or 0):,} products, "
                           f"{int(behaviour.get('queries') or 0):,} queries, {behaviour.get('files_folded', 0)} file(s) folded"),
            ("  period", f"{human_time(behaviour.get('first_ts'))} to {human_time(behaviour.get('last_ts'))}")]


def versions_table(rows: list[dict[str, Any]], title: str) -> Table:
    """`shoplens versions`: newest first, each with what it did."""
    table = Table(title=title, title_justify="left", caption="* = current", caption_justify="left", pad_edge=False)
    table.add_column("version", justify="right", no_wrap=True)
    table.add_column("created", no_wrap=True)
    table.add_column("products", justify="right", no_wrap=True)
    table.add_column("what it did", overflow="fold")
    for row in rows:
        products = "?" if row["products"] is None else f"{row['products']:,}"
        table.add_row(f"{row['version']}{' *' if row['current'] else ''}", human_time(row["created_at"]),
                      products, row.get("description") or row.get("error") or row["kind"])
    return table


def _settings(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k} {_settings(v)}" for k, v in value.items() if v not in (None, "", {}, []))
    if isinstance(value, list):
        return ", ".join(_settings(v) for v in value)
    return str(value)
