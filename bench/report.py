"""Result records and their rendering as markdown and JSON.

Sections only produce `Metric` rows (and quality rows); this module decides how
they look. A missed target is data, not a failure: every row is written with
its target and whether it was met, and a section that crashed shows up as an
error row instead of aborting the whole report.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


@dataclass
class Metric:
    """One table row: a measured value, optionally against a target."""

    section: str
    name: str
    value: float | None
    unit: str = ""
    target: str = ""
    met: bool | None = None
    notes: str = ""
    display: str | None = None  # overrides the formatted value (e.g. "0.96 / 0.8 ms")

    @property
    def measured(self) -> str:
        if self.display is not None:
            return self.display
        if self.value is None:
            return "n/a"
        return f"{fmt(self.value)} {self.unit}".strip()


def fmt(value: float) -> str:
    """Three significant digits without scientific notation for the usual ranges."""
    if math.isnan(value):
        return "nan"
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def at_most(
    section: str, name: str, value: float, unit: str, limit: float, notes: str = ""
) -> Metric:
    """Row whose target is `value < limit` (latencies)."""
    return Metric(
        section, name, value, unit, f"< {fmt(limit)} {unit}".strip(), value < limit, notes
    )


def at_least(
    section: str, name: str, value: float, unit: str, floor: float, notes: str = ""
) -> Metric:
    """Row whose target is `value >= floor` (recall, throughput)."""
    return Metric(
        section, name, value, unit, f">= {fmt(floor)} {unit}".strip(), value >= floor, notes
    )


@dataclass
class QualityRow:
    mode: str
    queries: int
    mrr_at_10: float
    recall_at_100: float
    hits_at_10: float
    p50_ms: float
    notes: str = ""


@dataclass
class Report:
    """Everything one `python -m bench search` run measured."""

    command: str
    quick: bool
    started: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    machine: dict[str, Any] = field(default_factory=lambda: machine_info())
    metrics: list[Metric] = field(default_factory=list)
    quality: list[QualityRow] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def add(self, rows: list[Metric]) -> None:
        self.metrics.extend(rows)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for row, metric in zip(data["metrics"], self.metrics, strict=True):
            row["measured"] = metric.measured
        return data


def machine_info() -> dict[str, Any]:
    """Cores, CPU model and memory, so numbers are never read without their machine."""
    model = platform.processor() or "unknown"
    memory_gb = float("nan")
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
                break
    except OSError:
        pass
    versions: dict[str, str] = {}
    for module in ("numpy", "faiss", "torch", "sentence_transformers", "httpx", "uvicorn"):
        try:
            versions[module] = str(__import__(module).__version__)
        except Exception:  # a missing optional module only loses a version string
            versions[module] = "?"
    return {
        "cores": os.cpu_count(),
        "cpu": model,
        "memory_gb": memory_gb,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
    }


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def header_lines(
    title: str, command: str, quick: bool, started: str, seconds: float, m: dict[str, Any]
) -> list[str]:
    """The provenance block every results file starts with: what ran, when, where."""
    return [
        f"# Meta-Media-Search benchmark: {title}",
        "",
        f"- command: `{command}`" + ("  (quick mode)" if quick else ""),
        f"- date: {started} (total {seconds:.0f} s)",
        f"- machine: {m['cores']} cores, {m['cpu']}, {m['memory_gb']} GB RAM, Python {m['python']}",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()),
        f"- load average (1/5/15 min) at start {m.get('load_avg_start', '?')}, "
        f"at end {m.get('load_avg_end', '?')} (other processes share the CPU)",
    ]


def render_markdown(report: Report) -> str:
    lines = [
        *header_lines(
            "search", report.command, report.quick, report.started, report.seconds, report.machine
        ),
        "",
        "| metric | measured | target | met? | notes |",
        "|---|---|---|---|---|",
    ]
    section = None
    for metric in report.metrics:
        if metric.section != section:
            section = metric.section
            lines.append(f"| **{_cell(section)}** | | | | |")
        met = "" if metric.met is None else ("yes" if metric.met else "**no**")
        lines.append(
            f"| {_cell(metric.name)} | {_cell(metric.measured)} | {_cell(metric.target)} "
            f"| {met} | {_cell(metric.notes)} |"
        )
    for name, error in report.errors.items():
        lines.append(f"| **{_cell(name)}** | error | | | {_cell(error)} |")
    if report.quality:
        lines += [
            "",
            "## Search quality (Reddit TOMT validation queries, full Wikipedia catalog)",
            "",
            "| mode | queries | MRR@10 | hits@10 | recall@100 | p50 latency | notes |",
            "|---|---|---|---|---|---|---|",
        ]
        for q in report.quality:
            lines.append(
                f"| {q.mode} | {q.queries} | {q.mrr_at_10:.3f} | {q.hits_at_10:.3f} "
                f"| {q.recall_at_100:.3f} | {fmt(q.p50_ms)} ms | {_cell(q.notes)} |"
            )
    return "\n".join(lines) + "\n"


def write(report: Report, out_dir: Path, name: str = "search") -> tuple[Path, Path]:
    """Write `<name>.md` and `<name>.json` under `out_dir`; returns both paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    md_path, json_path = out_dir / f"{name}.md", out_dir / f"{name}.json"
    md_path.write_text(render_markdown(report), encoding="utf-8")
    write_json(json_path, report.to_json())
    return md_path, json_path


def _finite(value: Any) -> Any:
    """NaN/inf become null: strict JSON, readable by any tool."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _json_default(value: object) -> object:
    """numpy scalars as numbers, anything else (paths) as text."""
    item = getattr(value, "item", None)
    return item() if callable(item) else str(value)


def write_json(path: Path, data: Any) -> None:
    """Raw numbers of a run as strict JSON (NaN/inf become null)."""
    text = json.dumps(_finite(data), indent=2, default=_json_default, allow_nan=False)
    path.write_text(text + "\n", encoding="utf-8")


def add_output_args(parser: argparse.ArgumentParser, out: Path, cache_dir: Path) -> None:
    """The `--out` and `--cache-dir` options every section takes."""
    parser.add_argument("--out", type=Path, default=out, help="output folder (bench/results)")
    parser.add_argument(
        "--cache-dir", type=Path, default=cache_dir, help="cache folder (bench/.cache)"
    )


def write_results(out: Path, name: str, md: str, raw: Any) -> None:
    """A section's report as `<name>.md` and its raw numbers as `<name>.json`, printed too."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.md").write_text(md, encoding="utf-8")
    write_json(out / f"{name}.json", raw)
    print(md)
