"""`metamedia` command line: parse, call a service, render (or print JSON)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from metamedia import __version__
from metamedia.config import Settings
from metamedia.domain import SearchRequest, SearchResponse, search_request_from_params
from metamedia.errors import MetaMediaError
from metamedia.formats.detect import detect_format
from metamedia.services.auth import DEFAULT_TENANT
from metamedia.services.backup import create_backup, restore_backup
from metamedia.services.demo_users import demo_users, load_demo_users
from metamedia.services.evaluation import EvalReport, evaluate, load_eval_queries
from metamedia.services.ingest import IngestReport
from metamedia.services.runtime import Runtime
from metamedia.services.store_transfer import migrate_store
from metamedia.services.validation import describe_validation_error

app = typer.Typer(
    help="Meta-Media-Search: semantic search over a media catalog.", no_args_is_help=True
)
index_app = typer.Typer(help="Maintain the vector and keyword indexes.", no_args_is_help=True)
app.add_typer(index_app, name="index")
interactions_app = typer.Typer(help="Bulk interaction data.", no_args_is_help=True)
app.add_typer(interactions_app, name="interactions")
keys_app = typer.Typer(help="API keys for write and admin endpoints.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
console = Console()
ANONYMOUS_WORDS = {
    "off": "off (every request needs an API key or a user token)",
    "read": "read (search and the public catalog; user data needs a key or user token)",
    "open": "OPEN (anyone may act as any user: demos only)",
}
err_console = Console(stderr=True)

DataDirOption = Annotated[
    Path | None,
    typer.Option(
        "--data-dir", help="Data directory (default: $METAMEDIA_DATA_DIR or a per-user folder)."
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def _settings(data_dir: Path | None) -> Settings:
    try:
        return Settings(data_dir=data_dir) if data_dir else Settings()
    except ValidationError as exc:
        _fail(f"bad configuration: {describe_validation_error(exc)}")


def _fail(message: str, code: int = 2) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    raise typer.Exit(code)


def _open(data_dir: Path | None) -> Runtime:
    return Runtime.open(_settings(data_dir))


@contextmanager
def _session(data_dir: Path | None) -> Iterator[Runtime]:
    """An open runtime for one command; product errors become a clean exit 2."""
    with _runtime_session(_settings(data_dir)) as runtime:
        yield runtime


@contextmanager
def _runtime_session(settings: Settings) -> Iterator[Runtime]:
    try:
        runtime = Runtime.open(settings)
    except MetaMediaError as exc:
        _fail(exc.message)
    try:
        yield runtime
    except MetaMediaError as exc:
        _fail(exc.message)
    finally:
        runtime.close()


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def _estimate_rows(path: Path, fmt: str) -> int | None:
    """Cheap total for the progress bar: newline count for line formats."""
    try:
        if fmt in ("jsonl", "csv") and path.is_file():
            with open(path, "rb") as handle:
                lines = sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))
            return max(lines - (1 if fmt == "csv" else 0), 0)
    except OSError:
        return None
    return None


def _progress_columns() -> list[Any]:
    return [
        SpinnerColumn(),
        TextColumn("reading {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    ]


def _print_rejects(rejects: list[tuple[str, int, str]], total: int, shown: int = 10) -> None:
    for source, line, reason in rejects[:shown]:
        where = escape(f"{source}:{line}")
        err_console.print(f"[yellow]rejected[/] {where}: {escape(reason)}", soft_wrap=True)
    if total > shown:
        err_console.print(f"... and {total - shown} more")


def _render_ingest(report: IngestReport) -> None:
    table = Table(title=f"Ingest summary ({report.format})", show_header=False)
    for label, value in [
        ("read", report.read),
        ("inserted", report.inserted),
        ("updated", report.updated),
        ("unchanged", report.unchanged),
        ("rejected", report.rejected),
        ("merged (rows sharing an id)", report.merged),
        ("ids assigned", report.ids_assigned),
        ("embedded", report.embedded),
        ("time", f"{report.seconds:.2f} s"),
        ("items/s", f"{report.items_per_s:.1f}"),
    ]:
        table.add_row(label, str(value))
    console.print(table)
    _print_rejects([(r.source, r.line, r.reason) for r in report.rejects], report.rejected)
    if report.rejects_file:
        err_console.print(f"all rejected rows: {escape(report.rejects_file)}", soft_wrap=True)


@app.command()
def ingest(
    path: Annotated[Path, typer.Argument(help="Catalog file or directory.")],
    format: Annotated[
        str, typer.Option("--format", help="auto|jsonl|csv|wikipedia|movielens")
    ] = "auto",
    tenant: Annotated[str, typer.Option(help="Tenant for rows that name none.")] = "default",
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Ingest a catalog: validate each row, embed what changed, index it."""
    try:
        fmt = detect_format(path) if format == "auto" else format
    except MetaMediaError as exc:
        _fail(exc.message)
    progress_bar = Progress(*_progress_columns(), console=err_console, disable=as_json)
    with _session(data_dir) as runtime, progress_bar as progress:
        task = progress.add_task(path.name, total=_estimate_rows(path, fmt))
        report = runtime.ingest.ingest_path(
            path,
            fmt,
            tenant=tenant,
            progress=lambda n: progress.advance(task, n),
            release_encoder=True,
        )
    if as_json:
        _print_json(report.as_dict())
    else:
        _render_ingest(report)


def _year_range(value: str | None) -> tuple[int | None, int | None]:
    if not value:
        return None, None
    low, sep, high = value.partition("-")
    try:
        if not sep:
            return int(low), int(low)
        return (int(low) if low else None), (int(high) if high else None)
    except ValueError:
        _fail(f"--year must look like 1995 or 1990-1999, not {value!r}")
    return None, None


def render_results(response: SearchResponse) -> None:
    table = Table(title=f"{len(response.results)} results in {response.took_ms:.1f} ms")
    for column in ("#", "id", "title", "year", "type", "genres", "score", "why"):
        table.add_column(column)
    for rank, hit in enumerate(response.results, start=1):
        e = hit.explanation
        why = []
        if e.keyword_rank:
            why.append(f"kw #{e.keyword_rank}")
        if e.vector_rank:
            why.append(f"vec #{e.vector_rank}")
        if e.vector_similarity is not None:
            why.append(f"sim {e.vector_similarity:.2f}")
        table.add_row(
            str(rank),
            hit.id,
            hit.title,
            str(hit.year or ""),
            hit.type,
            ", ".join(hit.genres[:3]),
            f"{hit.score:.4f}",
            " ".join(why),
        )
    console.print(table)


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="What to look for, in plain words.")],
    mode: Annotated[str, typer.Option(help="hybrid|semantic|keyword")] = "hybrid",
    limit: Annotated[int, typer.Option(help="Results per page (1-100).")] = 10,
    offset: Annotated[int, typer.Option(help="Results to skip (paging).")] = 0,
    type: Annotated[
        list[str] | None, typer.Option("--type", help="movie, series, episode, short, post")
    ] = None,
    genre: Annotated[list[str] | None, typer.Option("--genre")] = None,
    year: Annotated[str | None, typer.Option("--year", help="1995 or 1990-1999")] = None,
    platform: Annotated[list[str] | None, typer.Option("--platform")] = None,
    language: Annotated[list[str] | None, typer.Option("--language")] = None,
    min_rating: Annotated[float | None, typer.Option("--min-rating")] = None,
    tenant: Annotated[str, typer.Option()] = "default",
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Search the catalog (hybrid keyword + semantic by default)."""
    year_min, year_max = _year_range(year)
    try:
        request = search_request_from_params(
            query,
            mode=mode,
            limit=limit,
            offset=offset,
            types=type,
            genres=genre,
            platforms=platform,
            languages=language,
            year_min=year_min,
            year_max=year_max,
            min_rating=min_rating,
            tenant=tenant,
        )
    except ValidationError as exc:
        _fail(describe_validation_error(exc))
    with _session(data_dir) as runtime:
        response = runtime.search.search(request)
    if as_json:
        _print_json(response.model_dump(mode="json"))
    else:
        render_results(response)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            max=64,
            help="Server processes sharing the port; each holds its own model, index and "
            "caches, and all follow the same database.",
        ),
    ] = 1,
    data_dir: DataDirOption = None,
    anonymous: Annotated[
        str | None,
        typer.Option(
            help="What callers without a key or user token may do: off, read (search and "
            "read the public catalog) or open (demos: also act as any user). "
            "Default: METAMEDIA_ANONYMOUS, else read.",
        ),
    ] = None,
    forwarded_allow_ips: Annotated[
        str | None,
        typer.Option(
            help="Reverse proxies whose X-Forwarded-For names the client (comma-separated "
            "IPs or networks, '*' for any). Default: METAMEDIA_FORWARDED_ALLOW_IPS, else "
            "none: per-IP limits then count the connecting peer.",
        ),
    ] = None,
) -> None:
    """Start the REST API (interactive docs at /docs)."""
    import uvicorn

    from metamedia.api.app import create_app
    from metamedia.api.proxies import proxy_options

    settings = _settings(data_dir)
    if anonymous is not None:
        if anonymous not in ("off", "read", "open"):
            _fail(f"--anonymous must be off, read or open, not {anonymous!r}")
        settings = settings.model_copy(update={"anonymous": anonymous})
    if forwarded_allow_ips is not None:
        settings = settings.model_copy(update={"forwarded_allow_ips": forwarded_allow_ips})
    proxies = proxy_options(settings.forwarded_allow_ips)
    if "METAMEDIA_EMBED_THREADS" not in os.environ:
        # Each request embeds one short query; parallelism comes from concurrent requests.
        settings = settings.model_copy(update={"embed_threads": 1})
    console.print(
        f"Meta-Media-Search on http://{host}:{port}  (web UI: http://{host}:{port}/, "
        f"API docs: http://{host}:{port}/docs)"
    )
    console.print(f"Anonymous access: {ANONYMOUS_WORDS[settings.anonymous]}")
    if "METAMEDIA_PUBLIC_USER_WRITES" in os.environ:
        err_console.print(
            "[yellow]note:[/] METAMEDIA_PUBLIC_USER_WRITES is gone and ignored: end users "
            "write with their own token; METAMEDIA_ANONYMOUS=open is the demo's keyless mode."
        )
    # Our middleware writes one structured access line per request; uvicorn's own
    # access log would only repeat it, unstructured.
    if workers == 1:
        uvicorn.run(create_app(settings), host=host, port=port, access_log=False, **proxies)
        return
    # Worker processes build their app from the environment: pass the settings there.
    os.environ["METAMEDIA_DATA_DIR"] = str(settings.data_dir)
    os.environ["METAMEDIA_EMBED_THREADS"] = str(settings.embed_threads or 1)
    os.environ["METAMEDIA_ANONYMOUS"] = settings.anonymous
    uvicorn.run(
        "metamedia.api.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=False,
        **proxies,
    )


@app.command()
def demo(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
    serve_api: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Start the API afterwards.")
    ] = True,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
    open_mode: Annotated[
        bool,
        typer.Option(
            "--open/--no-open",
            help="Serve in open mode (METAMEDIA_ANONYMOUS=open): anyone may act as the "
            "demo users, one click away on the feed page. For demos only.",
        ),
    ] = True,
) -> None:
    """Load the bundled demo catalog, print a first search, then serve the API."""
    settings = _settings(data_dir)
    with _session(settings.data_dir) as runtime:
        with resources.as_file(resources.files("metamedia.demo") / "catalog.jsonl") as catalog:
            report = runtime.ingest.ingest_path(catalog, "jsonl")
        # Personas for the web feed page, then themes so they can be browsed.
        personas = load_demo_users(runtime.users)
        trained = runtime.train()
        response = runtime.search.search(SearchRequest(query="heist movie with a twist ending"))
    if as_json:
        _print_json(
            {
                "ingest": report.as_dict(),
                "demo_users": personas.as_dict(),
                "train": trained,
                "search": response.model_dump(mode="json"),
            }
        )
    else:
        _render_ingest(report)
        names = ", ".join(u.id for u in demo_users())
        console.print(f"Demo users for the feed page: {names}")
        console.print('First search: [bold]"heist movie with a twist ending"[/]')
        render_results(response)
    if serve_api:
        if open_mode:
            console.print(
                "[bold yellow]Open mode[/]: anonymous visitors may act as any user and read "
                "or change their data (METAMEDIA_ANONYMOUS=open). For demos only: "
                "`metamedia serve` defaults to public catalog reads."
            )
        mode = "open" if open_mode else None
        serve(host=host, port=port, data_dir=settings.data_dir, anonymous=mode)


@app.command()
def stats(data_dir: DataDirOption = None, as_json: JsonOption = False) -> None:
    """Catalog size, index type and size, model, data directory."""
    with _session(data_dir) as runtime:
        data = runtime.stats()
    if as_json:
        _print_json(data)
        return
    table = Table(title="Meta-Media-Search", show_header=False)
    for key, value in data.items():
        if isinstance(value, dict):
            for sub, subvalue in value.items():
                table.add_row(f"{key}.{sub}", str(subvalue))
        else:
            table.add_row(key, str(value))
    console.print(table)


@index_app.command("rebuild")
def index_rebuild(data_dir: DataDirOption = None, as_json: JsonOption = False) -> None:
    """Rebuild vector and keyword indexes from the relational store."""
    with _session(data_dir) as runtime:
        keyword = runtime.repo.rebuild_keyword_index()
        vectors = runtime.indexes.rebuild()
        kind = runtime.indexes.index.kind
    result = {"keyword_rows": keyword, "vectors": vectors, "index_type": kind}
    if as_json:
        _print_json(result)
    else:
        console.print(
            f"rebuilt keyword index ({keyword} rows) and {kind} vector index ({vectors} vectors)"
        )


@index_app.command("prune-vectors")
def index_prune_vectors(
    data_dir: DataDirOption = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only list the spaces; delete nothing.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Delete stored vectors of every embedding space but the one in use.

    Vectors are kept per space (model, fine-tuned weights, recipe), so switching
    models back costs nothing; but each upgrade of the shipped weights leaves the
    old space's vectors behind (~240 MB for 36k films). Replicas still running the
    old weights during a rolling upgrade would re-embed what they miss: prune once
    every process runs the new version.
    """
    with _session(data_dir) as runtime:
        current = runtime.indexes.space
        spaces = runtime.repo.embedding_spaces()
        stale = sorted(space for space in spaces if space != current)
        dropped = {} if dry_run else {s: runtime.repo.drop_embeddings(s) for s in stale}
        sqlite = runtime.settings.resolved_database_url.startswith("sqlite")
    result = {"current": current, "spaces": spaces, "dropped": dropped, "dry_run": dry_run}
    if as_json:
        _print_json(result)
        return
    for space, count in sorted(spaces.items()):
        mark = "in use" if space == current else ("kept: dry run" if dry_run else "deleted")
        console.print(f"{space}: {count} vectors ({mark})")
    if not stale:
        console.print("nothing to prune")
    elif dropped and sqlite:
        console.print(
            "SQLite keeps the file's size and reuses the freed pages for later writes; "
            "`sqlite3 catalog.sqlite3 VACUUM`, with every process stopped, shrinks it."
        )


@index_app.command("check")
def index_check(data_dir: DataDirOption = None, as_json: JsonOption = False) -> None:
    """Report items missing from, orphaned in, or stale in an index. Exit 1 if any."""
    if not _report_index_check(_settings(data_dir), as_json):
        raise typer.Exit(1)


def _report_index_check(settings: Settings, as_json: bool) -> bool:
    """Check both indexes of the store `settings` name, print the result, say if healthy."""
    with _runtime_session(settings) as runtime:
        vector = runtime.indexes.check()
        keyword = runtime.repo.check_keyword_index()
    healthy = vector.healthy and not (keyword.missing or keyword.orphaned or keyword.stale)
    result = {
        "healthy": healthy,
        "vector": {
            "type": vector.kind,
            "size": vector.size,
            "missing": vector.missing,
            "orphaned": vector.orphaned,
            "stale": vector.stale,
            "pending_changes": vector.pending_changes,
        },
        "keyword": {
            "missing": keyword.missing,
            "orphaned": keyword.orphaned,
            "stale": keyword.stale,
        },
    }
    if as_json:
        _print_json(result)
    else:
        console.print(
            f"vector index ({vector.kind}, {vector.size} vectors): "
            f"{len(vector.missing)} missing, {len(vector.orphaned)} orphaned, "
            f"{len(vector.stale)} stale, {vector.pending_changes} changes not yet saved"
        )
        console.print(
            f"keyword index: {len(keyword.missing)} missing, "
            f"{len(keyword.orphaned)} orphaned, {len(keyword.stale)} stale"
        )
        console.print("[green]healthy[/]" if healthy else "[red]run `metamedia index rebuild`[/]")
    return healthy


@app.command("migrate-store")
def migrate_store_command(
    to: Annotated[
        str, typer.Option("--to", help="Target database URL, e.g. postgresql://user@host:5432/db")
    ],
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Copy this data directory's store into an empty PostgreSQL database, then check it.

    Afterwards, serve with METAMEDIA_DATABASE_URL set to the target and the same
    data directory: the vector index files there stay valid for the copy.
    """
    settings = _settings(data_dir)
    with Progress(*_progress_columns(), console=console, disable=as_json) as bar:
        tasks: dict[str, Any] = {}

        def progress(table: str, done: int, total: int) -> None:
            if table not in tasks:
                tasks[table] = bar.add_task(table, total=total or 1)
            bar.update(tasks[table], completed=done if total else 1)

        try:
            result = migrate_store(settings.resolved_database_url, to, progress)
        except (ValueError, MetaMediaError) as exc:
            _fail(f"migrate-store: {exc}")
    summary = {
        "source": result.source,
        "target": result.target,
        "rows": result.copy.rows,
        "mismatched": {k: list(v) for k, v in result.copy.mismatched.items()},
        "keyword_rows": result.keyword_rows,
    }
    if as_json:
        _print_json(summary)
    else:
        table = Table("table", "rows copied")
        for name, rows in result.copy.rows.items():
            table.add_row(name, str(rows))
        console.print(table)
        for name, (left, right) in result.copy.mismatched.items():
            console.print(f"[red]{name}: {left} rows in the source, {right} in the target[/]")
    if not result.ok:
        raise typer.Exit(1)
    target = settings.model_copy(update={"database_url": to})
    if not _report_index_check(target, as_json):
        raise typer.Exit(1)


@app.command()
def backup(
    dest: Annotated[Path, typer.Argument(help="New folder to write the backup into.")],
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Back up the store and the data directory while the server keeps serving.

    SQLite: the online-backup API; PostgreSQL: pg_dump on one snapshot. A
    manifest.json lists every file with its size and sha256.
    """
    settings = _settings(data_dir)
    try:
        report = create_backup(settings, dest, app_version=__version__)
    except MetaMediaError as exc:
        _fail(f"backup: {exc.message}")
    except OSError as exc:
        _fail(f"backup: {exc}")
    manifest = report.manifest
    tables = manifest.database.tables
    summary = {
        "backup": str(report.path),
        "store": manifest.database.kind,
        "schema_revision": manifest.database.schema_revision,
        "files": len(manifest.files),
        "bytes": manifest.total_bytes,
        "items": tables.get("media"),
        "seconds": manifest.seconds,
    }
    if as_json:
        _print_json(summary)
        return
    console.print(
        f"backed up {manifest.database.kind} store ({tables.get('media', 0)} catalog items, "
        f"schema {manifest.database.schema_revision}) and {len(manifest.data_entries())} data "
        f"files: {manifest.total_bytes / 1e6:.1f} MB in {manifest.seconds:.1f} s"
    )
    console.print(f"  {escape(str(report.path))}", soft_wrap=True)


@app.command()
def restore(
    src: Annotated[Path, typer.Argument(help="Backup folder written by `metamedia backup`.")],
    force: Annotated[
        bool, typer.Option("--force", help="Replace a data directory or database that holds data.")
    ] = False,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Restore a backup: checksums first, then all or nothing. Stop the servers first."""
    settings = _settings(data_dir)
    try:
        report = restore_backup(settings, src, force=force)
    except MetaMediaError as exc:
        _fail(f"restore: {exc.message}")
    except OSError as exc:
        _fail(f"restore: {exc}")
    manifest = report.manifest
    summary = {
        "backup": str(report.path),
        "data_dir": str(report.data_dir),
        "database": report.database,
        "store": manifest.database.kind,
        "items": manifest.database.tables.get("media"),
        "replaced": report.replaced,
        "created_at": manifest.created_at,
        "seconds": report.seconds,
    }
    if as_json:
        _print_json(summary)
        return
    console.print(
        f"restored the backup of {manifest.created_at} ({summary['items']} catalog items) into "
        f"{escape(str(report.data_dir))} and {escape(report.database)} in {report.seconds:.1f} s",
        soft_wrap=True,
    )


@interactions_app.command("import")
def interactions_import(
    path: Annotated[Path, typer.Argument(help="ratings.csv (or its directory) or a JSONL file.")],
    format: Annotated[str, typer.Option("--format", help="auto|movielens|jsonl")] = "auto",
    tenant: Annotated[str, typer.Option()] = "default",
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Import interactions; users are created as met; re-importing adds nothing."""
    progress_bar = Progress(*_progress_columns(), console=err_console, disable=as_json)
    with _session(data_dir) as runtime, progress_bar as progress:
        task = progress.add_task(path.name, total=None)
        report = runtime.interactions.import_path(
            path, format, tenant=tenant, progress=lambda n: progress.advance(task, n)
        )
    if as_json:
        _print_json(report.as_dict())
        return
    summary = report.as_dict()
    counts = ("read", "recorded", "duplicates", "rejected", "users")
    console.print(", ".join(f"{k} {summary[k]}" for k in counts) + f" in {report.seconds:.1f} s")
    _print_rejects([(r["source"], r["line"], r["reason"]) for r in report.rejects], report.rejected)


def _render_feed(title: str, items: list[Any]) -> None:
    table = Table(title=title)
    for column in ("#", "id", "title", "score", "why"):
        table.add_column(column)
    for rank, item in enumerate(items, start=1):
        table.add_row(str(rank), item.id, item.title, f"{item.score:.3f}", "; ".join(item.reasons))
    console.print(table)


@app.command()
def feed(
    user: Annotated[str, typer.Option("--user", help="User id.")],
    limit: Annotated[int, typer.Option(help="Items (1-100).")] = 20,
    tenant: Annotated[str, typer.Option()] = "default",
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """A user's discovery feed, with the reasons for each item."""
    with _session(data_dir) as runtime:
        page = runtime.recommend.feed(tenant, user, limit)
    if as_json:
        _print_json(page.model_dump(mode="json"))
    else:
        _render_feed(f"Feed for {user}", page.items)


@app.command()
def recommend(
    batch: Annotated[Path, typer.Option("--batch", help="File with one user id per line.")],
    limit: Annotated[int, typer.Option(help="Items per user (1-100).")] = 20,
    tenant: Annotated[str, typer.Option()] = "default",
    data_dir: DataDirOption = None,
) -> None:
    """Feeds for many users as JSON Lines on stdout: {"user", "items"} or {"user", "error"}."""
    if not batch.exists():
        _fail(f"{batch}: no such file")
    users = [u.strip() for u in batch.read_text(encoding="utf-8").splitlines() if u.strip()]
    with _session(data_dir) as runtime:
        for user in users:
            try:
                page = runtime.recommend.feed(tenant, user, limit)
                line: dict[str, Any] = {
                    "user": user,
                    "items": [i.model_dump(mode="json") for i in page.items],
                }
            except MetaMediaError as exc:
                line = {"user": user, "error": exc.message}
            sys.stdout.write(json.dumps(line, ensure_ascii=False) + "\n")


@app.command()
def train(
    tenant: Annotated[str, typer.Option()] = "default",
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Fit the collaborative model (EASE) and the catalog themes from stored data."""
    with _session(data_dir) as runtime:
        report = runtime.train(tenant)
    if as_json:
        _print_json(report)
        return
    for part in ("collaborative", "themes"):
        details = ", ".join(f"{k} {v}" for k, v in report[part].items())
        console.print(f"{part}: {escape(details)}")


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="Who or what uses the key.")],
    scope: Annotated[
        list[str], typer.Option(help="read, write or admin (admin implies write); repeatable.")
    ],
    tenant: Annotated[
        str | None,
        typer.Option(help="The one tenant the key acts for (default: 'default')."),
    ] = None,
    platform: Annotated[
        bool,
        typer.Option(
            "--platform", help="A platform key: no tenant of its own, names one with X-Tenant."
        ),
    ] = False,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Mint a key; it is printed once and only its SHA-256 digest is stored."""
    if platform and tenant is not None:
        _fail("a key is either for one --tenant or a --platform key, not both")
    bound = None if platform else (tenant or DEFAULT_TENANT)
    with _session(data_dir) as runtime:
        issued = runtime.keys.create(name, scope, actor="cli", tenant=bound)
    if as_json:
        _print_json(
            {
                "id": issued.record.pk,
                "name": name,
                "scopes": scope,
                "tenant": bound,
                "key": issued.secret,
            }
        )
    else:
        where = "platform key (any tenant via X-Tenant)" if bound is None else f"tenant {bound!r}"
        console.print(
            f"Key #{issued.record.pk} '{escape(name)}' scopes {sorted(scope)}, "
            f"{escape(where)} (shown once):"
        )
        sys.stdout.write(issued.secret + "\n")


@keys_app.command("list")
def keys_list(data_dir: DataDirOption = None, as_json: JsonOption = False) -> None:
    """Every key's id, name, prefix and scopes (never the key)."""
    with _session(data_dir) as runtime:
        records = runtime.keys.all()
    rows = [
        {
            "id": r.pk,
            "name": r.name,
            "prefix": r.prefix,
            "scopes": sorted(r.scopes),
            "tenant": r.tenant,
            "revoked": r.revoked_at is not None,
        }
        for r in records
    ]
    if as_json:
        _print_json(rows)
        return
    for row in rows:
        state = "revoked" if row["revoked"] else "active"
        where = "platform" if row["tenant"] is None else f"tenant {row['tenant']}"
        console.print(
            escape(f"#{row['id']} {row['name']} mm_{row['prefix']}_… {row['scopes']} ")
            + f"{escape(where)} {state}"
        )


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[int, typer.Argument(help="The key's id from `keys list`.")],
    data_dir: DataDirOption = None,
) -> None:
    """Revoke a key; every server stops accepting it within seconds."""
    with _session(data_dir) as runtime:
        runtime.keys.revoke(key_id, actor="cli")
    console.print(f"Key #{key_id} revoked.")


# -- `metamedia eval search` (services/evaluation.py) ------------------------------
eval_app = typer.Typer(help="Measure search quality on your own catalog.", no_args_is_help=True)
app.add_typer(eval_app, name="eval")


@eval_app.command("search")
def eval_search(
    queries_file: Annotated[
        Path,
        typer.Argument(
            help="JSONL, one query a line: {query, gold} with a media id, or {query, title, year}."
        ),
    ],
    modes: Annotated[
        str, typer.Option(help="Comma-separated modes to compare.")
    ] = "hybrid,keyword,semantic",
    limit: Annotated[
        int, typer.Option(help="Results per search (1-100); recall@100 needs 100.")
    ] = 100,
    tenant: Annotated[str, typer.Option()] = "default",
    json_out: Annotated[
        Path | None,
        typer.Option("--json", help="Write the full report (per-query ranks) here; '-' = stdout."),
    ] = None,
    show: Annotated[int, typer.Option(help="Per-query rows to print (0: none).")] = 20,
    data_dir: DataDirOption = None,
) -> None:
    """MRR@10, Recall@10 and Recall@100 per mode, plus each query's rank."""
    chosen = [m.strip() for m in modes.split(",") if m.strip()]
    try:
        queries, problems = load_eval_queries(queries_file)
    except OSError as exc:
        _fail(f"cannot read {queries_file}: {exc.strerror or exc}")
    to_stdout = json_out == Path("-")
    with (
        _session(data_dir) as runtime,
        Progress(
            *_progress_columns(), console=err_console, transient=True, disable=to_stdout
        ) as bar,
    ):
        task = bar.add_task(f"{queries_file.name} ({len(queries)} queries)", total=None)
        report = evaluate(
            runtime,
            queries,
            chosen,
            limit=limit,
            tenant=tenant,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
            problems=problems,
        )
    for problem in report.unresolved:
        where = escape(f"{queries_file}:{problem.line}")
        err_console.print(f"[yellow]skipped[/] {where}: {escape(problem.reason)}", soft_wrap=True)
    if to_stdout:
        _print_json(report.to_dict())
    else:
        _render_eval(report, show)
    if json_out is not None and not to_stdout:
        text = json.dumps(report.to_dict(), indent=2, ensure_ascii=False)
        json_out.write_text(text + "\n", encoding="utf-8")
        err_console.print(f"report written to {escape(str(json_out))}", soft_wrap=True)
    if not report.ranks:
        _fail("no query could be evaluated")


def _render_eval(report: EvalReport, show: int) -> None:
    n = len(report.ranks)
    table = Table(title=f"Search quality: {n} queries, limit {report.limit}")
    for column in ("mode", "queries", "MRR@10", "Recall@10", "Recall@100", "refused", "p50 ms"):
        table.add_column(column, justify="left" if column == "mode" else "right")
    for mode, s in report.modes.items():
        table.add_row(
            mode,
            str(s.queries),
            f"{s.mrr_at_10:.3f}",
            f"{s.recall_at_10:.3f}",
            f"{s.recall_at_100:.3f}",
            str(s.refused),
            f"{s.p50_ms:.1f}",
        )
    console.print(table)
    if show <= 0 or not report.ranks:
        return
    ranks = Table(title="Rank of the gold item per query (- = not in the results)")
    for column in ("line", "query", "gold", *report.modes):
        ranks.add_column(column)
    for row in report.ranks[:show]:
        cells = [str(row.rank[m]) if row.rank.get(m) else "-" for m in report.modes]
        ranks.add_row(str(row.line), row.query, row.gold, *cells)
    console.print(ranks)
    if n > show:
        console.print(f"... and {n - show} more (--json for every query)")


def main() -> None:  # pragma: no cover - console-script entry point alias
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    app()
