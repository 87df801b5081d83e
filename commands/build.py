"""Commands that write to an index: build it, update it, delete from it, fold events, watch an inbox."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import List, Optional

import typer

from shoplens.commands.base import (DeviceOption, FieldMapOption, IndexOption, JsonOption, RichProgress, StrictOption, app,
                                    err, handle_errors, json_text, literal, out, parse_field_maps, print_commit, print_json,
                                    print_rejects)
from shoplens.common.errors import ConfigError
from shoplens.common.priority import MAX_NICE, WATCH_NICE, lower_priority


# -- index -------------------------------------------------------------------------


@app.command()
@handle_errors
def index(
    catalog: Path = typer.Argument(..., help="Catalog file: .jsonl, .jsonl.gz, .csv or .parquet."),
    index_dir: Path = IndexOption,
    field_map: Optional[List[str]] = FieldMapOption,
    strict: bool = StrictOption,
    model: str = typer.Option("shoplens-lite0-minilm", "--model", help="open_clip model name (default: the offline ShopLens model)."),
    pretrained: Optional[str] = typer.Option(None, "--pretrained", help="open_clip weights tag or checkpoint path (heads file for the default model)."),
    device: str = DeviceOption,
    lexical: str = typer.Option("tantivy", "--lexical", help="Lexical backend: tantivy (embedded), elasticsearch (SHOPLENS_ES_URL) or opensearch (SHOPLENS_OS_URL)."),
    vectors: str = typer.Option("faiss", "--vectors", help="Where product vectors are searched: faiss (embedded), elasticsearch (exact kNN, or IVF lists with --vector-index ivf, in the lexical store's documents; needs --lexical elasticsearch) or opensearch (HNSW, k-NN plugin; needs --lexical opensearch)."),
    vector_index: str = typer.Option("auto", "--vector-index", help="auto (FAISS: exact below 20,000 products, HNSW above), flat, hnsw, ivf or ivfpq; --vectors elasticsearch runs flat (exact) or ivf on Elasticsearch 7.10 and hnsw on 8+, --vectors opensearch hnsw."),
    image_weight: float = typer.Option(0.5, "--image-weight", help="Share of the image embedding in a product's vector (0..1)."),
    es_shards: Optional[int] = typer.Option(None, "--es-shards", help="With --lexical elasticsearch or opensearch: primary shards of the new cluster index (default 1)."),
    es_replicas: Optional[int] = typer.Option(None, "--es-replicas", help="With --lexical elasticsearch or opensearch: replicas of each shard (default 1; 0 on a one-node cluster)."),
    keep_versions: int = typer.Option(10, "--keep-versions", help="How many committed versions to keep for rollback."),
    encoder_runtime: str = typer.Option("auto", "--encoder-runtime", help="What encodes queries: onnx (ONNX Runtime, exported now; the default where it is installed), onnx-int8 (its text graph with int8 weights: faster, less exact) or torch."),
    as_json: bool = JsonOption,
):
    """Index a catalog (a new version of INDEX; unchanged products reuse their embeddings)."""
    from shoplens.indexers.writer import WriteOptions, build_index, check_options

    options = WriteOptions(model=model, pretrained=pretrained, device=device, lexical_backend=lexical,
                           lexical_config=lexical_layout(lexical, es_shards, es_replicas),
                           vector_backend=vectors, vector_config={"kind": vector_index, "image_weight": image_weight},
                           keep_versions=keep_versions, encoder_runtime=encoder_runtime)
    check_options(options)
    with RichProgress(enabled=not as_json) as progress:
        report = build_index(catalog, index_dir, options, parse_field_maps(field_map), strict=strict, progress=progress)
    if as_json:
        print_json(report.to_dict())
        return
    print_commit(report, index_dir)


def lexical_layout(lexical: str, shards: int | None, replicas: int | None) -> dict:
    """The lexical store's settings from --es-shards / --es-replicas (recorded in the manifest, shown by `info`)."""
    if lexical not in ("elasticsearch", "opensearch"):
        if shards is not None or replicas is not None:
            raise ConfigError("--es-shards and --es-replicas need --lexical elasticsearch or opensearch")
        return {}
    return {"shards": 1 if shards is None else shards, "replicas": 1 if replicas is None else replicas}


# -- incremental updates ------------------------------------------------------------


@app.command()
@handle_errors
def update(
    delta: Path = typer.Argument(..., help="Products to add or change (.jsonl, .csv, .parquet); rows for known ids are patches."),
    index_dir: Path = IndexOption,
    field_map: Optional[List[str]] = FieldMapOption,
    strict: bool = StrictOption,
    nice: int = typer.Option(0, "--nice", min=0, max=MAX_NICE, help="Lower this command's CPU priority by N (Unix nice), so a server's searches on this machine come first."),
    device: str = DeviceOption,
    as_json: bool = JsonOption,
):
    """Upsert new and changed products (one new version; only changed content is re-encoded)."""
    from shoplens.indexers.updates import apply_delta

    lower_priority(nice)
    with RichProgress(enabled=not as_json) as progress:
        report = apply_delta(index_dir, delta, parse_field_maps(field_map), strict=strict, device=device,
                             progress=progress)
    print_json(report.to_dict()) if as_json else print_commit(report, index_dir)


@app.command()
@handle_errors
def delete(
    ids: Optional[str] = typer.Option(None, "--ids", help="Comma-separated product ids."),
    ids_file: Optional[Path] = typer.Option(None, "--file", help="File of ids, one a line (or JSONL with an id)."),
    index_dir: Path = IndexOption,
    strict: bool = StrictOption,
    as_json: bool = JsonOption,
):
    """Delete products from every store at once (one new version)."""
    from shoplens.common.errors import ConfigError
    from shoplens.indexers.updates import delete_products, read_ids

    if (ids is None) == (ids_file is None):
        raise ConfigError("give --ids 1,2,3 or --file ids.txt (one of them)")
    wanted = ids.split(",") if ids is not None else read_ids(ids_file)
    if not any(product_id.strip() for product_id in wanted):
        raise ConfigError(f"--ids {ids!r} names no ids; nothing was deleted; give them comma-separated, e.g. --ids 1528,1529")
    report = delete_products(index_dir, wanted, strict=strict, source=str(ids_file or "--ids"))
    print_json(report.to_dict()) if as_json else print_commit(report, index_dir)


@app.command()
@handle_errors
def watch(
    inbox: Path = typer.Argument(..., help="Directory where delta, *.delete.txt and *.events.jsonl files land."),
    index_dir: Path = IndexOption,
    window: float = typer.Option(10.0, "--window", help="Seconds a batch of normal changes may wait."),
    priority_window: float = typer.Option(1.0, "--priority-window", help="Seconds price/availability changes and deletes may wait."),
    max_rows: int = typer.Option(5000, "--max-rows", help="A batch this large commits at once."),
    poll: float = typer.Option(0.5, "--poll", help="Seconds between looks at the inbox."),
    field_map: Optional[List[str]] = FieldMapOption,
    once: bool = typer.Option(False, "--once", help="Apply what is in the inbox now, then exit."),
    nice: Optional[int] = typer.Option(None, "--nice", min=0, max=MAX_NICE, help="Lower the watcher's CPU priority by N (Unix nice), so a server's searches on this machine come first; default 10 when watching, 0 with --once."),
    as_json: bool = JsonOption,
):
    """Keep applying files as they land in INBOX; each batch is one commit. Ctrl-C stops."""
    from shoplens.engine.operations import create_watcher
    from shoplens.indexers.watch import WatchConfig

    def report(record: dict) -> None:
        if as_json:
            sys.stdout.write(json_text(record, indent=None) + "\n")
            sys.stdout.flush()
            return
        files = ", ".join(record.get("files") or [record.get("file", "?")])
        stamp = time.strftime("%H:%M:%S")
        if record.get("error"):
            err.print(f"{stamp} [yellow]{literal(files)}[/] ({record['queue']}): {literal(str(record['error']))}", highlight=False)
            return
        if record.get("note"):
            out.print(f"{stamp} {literal(files)} ({record['queue']}): {literal(record['note'])}", highlight=False)
            return
        details = ", ".join(f"{k} {v}" for k, v in record.items()
                            if k not in ("queue", "version", "files", "file", "rejects_path") and v not in (0, None))
        head = "no change" if record["version"] is None else f"[bold green]version {record['version']}[/]"
        out.print(f"{stamp} {literal(files)} ({record['queue']}): {head}: {literal(details)}", highlight=False)
        if record.get("rejects_path"):
            err.print(f"{stamp} {literal(files)}: {record['rejected']} rejected, written to {literal(str(record['rejects_path']))}",
                      highlight=False)

    config = WatchConfig(window_seconds=window, priority_window_seconds=priority_window, max_batch_rows=max_rows,
                         poll_seconds=poll, field_map=parse_field_maps(field_map))
    watcher = create_watcher(index_dir, inbox, config, on_commit=report)
    lower_priority(nice if nice is not None else 0 if once else WATCH_NICE)
    if not as_json and not once:
        out.print(f"watching {literal(str(inbox))} (Ctrl-C to stop)")
    try:
        watcher.run(once=once)
    except KeyboardInterrupt:
        watcher.step(force=True)


# -- behaviour and reranking -------------------------------------------------------


@app.command()
@handle_errors
def events(
    events_file: Path = typer.Argument(..., help="Behaviour events, JSONL: {ts, type: impression|click|cart|order, id, query?, position?}."),
    index_dir: Path = IndexOption,
    strict: bool = StrictOption,
    force: bool = typer.Option(False, "--force", help="Fold a file even if it was folded before."),
    as_json: bool = JsonOption,
):
    """Validate behaviour events and fold them into the index's aggregates (one new version)."""
    from shoplens.rerank.folding import apply_events

    report = apply_events(index_dir, events_file, strict=strict, force=force)
    if as_json:
        print_json(report.to_dict())
        return
    if report.version is None:
        out.print("no valid events to fold")
    else:
        kinds = ", ".join(f"{count:,} {name}s" for name, count in report.by_type.items())
        out.print(f"[bold green]version {report.version}[/]: folded {report.folded:,} events ({kinds}) "
                  f"in {report.seconds:.2f} s, {report.events_per_second:,.0f} events/s")
    print_rejects(report.rejects, report.rejects_path, "line")
