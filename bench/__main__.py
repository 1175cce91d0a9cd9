"""`python -m bench <section> [...]`: the CLI (search, recommend, service, quality,
storage, engine, compressed, ingest-speed, backup, train-ranker).

Only argument parsing lives here; the sections live in their own modules so
each can be read (and run from a REPL) on its own.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from dataclasses import replace
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent


def _parser() -> argparse.ArgumentParser:
    from bench.search_bench import SECTIONS

    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    search = commands.add_parser(
        "search",
        help="ingest, embedding, vector search, ranking, HTTP and quality benchmarks",
        description="Measure search performance and quality; writes search.md and search.json.",
    )
    search.add_argument(
        "--quick",
        action="store_true",
        help="smaller workloads (200k instead of 1M vectors, fewer requests): a smoke test",
    )
    search.add_argument(
        "--out", type=Path, default=BENCH_DIR / "results", help="output folder (bench/results)"
    )
    search.add_argument(
        "--fresh",
        action="store_true",
        help="rebuild the cached embedded catalog (re-measures ingest with embedding, 15-35 min)",
    )
    search.add_argument(
        "--cache-dir", type=Path, default=BENCH_DIR / ".cache", help="cache folder (bench/.cache)"
    )
    search.add_argument(
        "--only",
        nargs="+",
        choices=SECTIONS,
        default=list(SECTIONS),
        metavar="SECTION",
        help=f"run only these sections ({', '.join(SECTIONS)}); default all",
    )
    search.add_argument(
        "--ann-size", type=int, default=None, help="size of the large vector set (default 1M)"
    )
    _add_recommend(commands)
    _add_service(commands)
    _add_quality(commands)
    from bench.storage_bench import add_parser as add_storage

    add_storage(commands)
    from bench.backup_bench import add_parser as add_backup

    add_backup(commands)
    from bench.engine_bench import add_parser as add_engine

    add_engine(commands)
    from bench.compressed_bench import add_parser as add_compressed

    add_compressed(commands)
    from bench.ingest_speed import add_parser as add_ingest_speed

    add_ingest_speed(commands)
    return parser


# -- `quality` subcommand (bench/quality_suite.py) --------------------------------
def _add_quality(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    quality = commands.add_parser(
        "quality",
        help="search quality: tip-of-the-tongue, descriptive and exact-title queries",
        description="Measure MRR@10 / Recall@10 / Recall@100 per mode on every query set, "
        "through `metamedia eval`'s service; writes quality.md and quality.json.",
    )
    quality.add_argument(
        "--out", type=Path, default=BENCH_DIR / "results", help="output folder (bench/results)"
    )
    quality.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="evaluate this ingested catalog in place (default: a copy of the cached full "
        "Wikipedia catalog, built first when missing)",
    )
    quality.add_argument(
        "--cache-dir", type=Path, default=BENCH_DIR / ".cache", help="cache folder (bench/.cache)"
    )
    quality.add_argument(
        "--fresh", action="store_true", help="rebuild the cached embedded catalog first"
    )
    quality.add_argument(
        "--modes", default="hybrid,keyword,semantic", help="comma-separated search modes"
    )
    quality.add_argument(
        "--max-queries",
        type=int,
        default=None,
        help="at most this many queries per set (a smoke test; the report says so)",
    )
    quality.add_argument(
        "--exact-titles", type=int, default=1000, help="catalog titles drawn as queries (1000)"
    )
    quality.add_argument("--seed", type=int, default=None, help="seed of the title draw")


def _run_quality(args: argparse.Namespace, argv: list[str] | None) -> int:
    from bench import quality_suite

    argv_used = sys.argv[1:] if argv is None else argv
    opts = quality_suite.QualityOptions(
        command="python -m bench " + shlex.join(argv_used),
        out=args.out,
        data_dir=args.data_dir,
        cache_dir=args.cache_dir,
        fresh=args.fresh,
        modes=tuple(m.strip() for m in args.modes.split(",") if m.strip()),
        max_queries=args.max_queries,
        exact_titles=args.exact_titles,
        seed=quality_suite.EXACT_TITLE_SEED if args.seed is None else args.seed,
    )
    raw = quality_suite.run(opts)
    md_path, json_path = quality_suite.write(raw, opts.out)
    print(md_path.read_text(encoding="utf-8"))
    print(f"wrote {md_path} and {json_path}", file=sys.stderr)
    return 0


def _add_service(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    service = commands.add_parser(
        "service",
        help="mixed search / feed / interaction load on the real server, caches cold and "
        "warm, embedded and on PostgreSQL + Redis with one and two replicas",
        description="Measure the service under mixed load; writes service.md/.json.",
    )
    service.add_argument("--quick", action="store_true", help="600 requests per pass")
    service.add_argument(
        "--replicas",
        type=int,
        nargs="+",
        choices=(1, 2),
        default=[1, 2],
        help="PostgreSQL + Redis configurations to run: 1 and/or 2 `metamedia serve` "
        "replicas (default both)",
    )
    service.add_argument(
        "--no-embedded",
        action="store_true",
        help="skip the embedded-default passes (a partial report, for trying the replicas)",
    )
    service.add_argument(
        "--out", type=Path, default=BENCH_DIR / "results", help="output folder (bench/results)"
    )
    service.add_argument(
        "--cache-dir", type=Path, default=BENCH_DIR / ".cache", help="cache folder (bench/.cache)"
    )


# -- `recommend` subcommand (bench/recommend_bench.py) ----------------------------
def _add_recommend(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    rec = commands.add_parser(
        "recommend",
        help="MovieLens offline evaluation vs baselines, and feed / interaction latency",
        description="Measure recommendation quality and latency; writes recommend.md/.json.",
    )
    rec.add_argument("--quick", action="store_true", help="100 eval users, fewer latency calls")
    rec.add_argument(
        "--latency-only",
        action="store_true",
        help="skip the MovieLens offline evaluation; time feed and record() only",
    )
    rec.add_argument(
        "--out", type=Path, default=BENCH_DIR / "results", help="output folder (bench/results)"
    )
    rec.add_argument(
        "--cache-dir", type=Path, default=BENCH_DIR / ".cache", help="cache folder (bench/.cache)"
    )


# ---------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    raw = sys.argv[1:] if argv is None else argv
    if raw[:1] == ["train-ranker"]:
        # Its own argument parser: the model is written into the package.
        from bench.train_ranker import main as train_ranker

        return train_ranker(raw[1:])
    args = _parser().parse_args(argv)
    if args.command == "recommend":
        from bench import recommend_bench

        return recommend_bench.main(args)
    if args.command == "service":
        from bench import service_bench

        return service_bench.main(args)
    if args.command == "quality":
        return _run_quality(args, argv)
    if args.command == "storage":
        from bench import storage_bench

        return storage_bench.main(args, raw)
    if args.command == "engine":
        from bench import engine_bench

        return engine_bench.main(args, raw)
    if args.command == "compressed":
        from bench import compressed_bench

        return compressed_bench.main(args, raw)
    if args.command == "ingest-speed":
        from bench import ingest_speed

        return ingest_speed.main(args, raw)
    if args.command == "backup":
        from bench import backup_bench

        return backup_bench.main(args, raw)
    from bench import report as report_mod
    from bench.search_bench import Options, Sizes, run

    sizes = Sizes.quick() if args.quick else Sizes()
    if args.ann_size is not None:
        sizes = replace(sizes, ann_size=args.ann_size)
    argv_used = sys.argv[1:] if argv is None else argv
    options = Options(
        command="python -m bench " + shlex.join(argv_used),
        out=args.out,
        cache_dir=args.cache_dir,
        quick=args.quick,
        fresh=args.fresh,
        only=tuple(args.only),
        sizes=sizes,
    )
    options.cache_dir.mkdir(parents=True, exist_ok=True)
    report = run(options)
    md_path, json_path = report_mod.write(report, options.out)
    print(md_path.read_text(encoding="utf-8"))
    print(f"wrote {md_path} and {json_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
