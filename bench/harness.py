"""What the benchmarks share: run one command in a fresh process and measure it, and print.

`measure()` runs a command (e.g. `janitor scan`) as the only child of a small wrapper process
and reads back its wall time and peak RSS, while the local emulator, in the benchmark's own
process, counts the requests it answers (`CountingServer`). The rest formats the report.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Protocol


class CountingServer(Protocol):
    """A local emulator that counts requests per operation and the time it spent answering."""

    @property
    def calls(self) -> Counter[str]: ...

    @property
    def busy_s(self) -> float: ...

    def reset_calls(self) -> None: ...

    def reset_busy(self) -> None: ...


@dataclass
class Measured:
    returncode: int
    wall_s: float
    peak_rss_mb: float
    calls: Counter[str]
    emulator_s: float
    log: str


# Runs the measured command as its only child and writes that child's wall time and peak RSS.
# The indirection matters: a child's ru_maxrss starts from its parent's resident set at fork
# (Linux carries the old mm's high-water mark over exec), and this process holds moto and the
# whole seeded fleet. Forked from this small wrapper instead, the measured process starts near
# the wrapper's ~10 MB and the figure is its own.
_WRAPPER = """\
import json, resource, subprocess, sys, time
started = time.perf_counter()
code = subprocess.call(sys.argv[2:])
wall = time.perf_counter() - started
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
with open(sys.argv[1], "w") as out:
    json.dump({"wall_s": wall, "peak_rss_bytes": usage.ru_maxrss * scale}, out)
sys.exit(code)
"""


def measure(
    server: CountingServer, argv: Sequence[str], env: Mapping[str, str], log: Path
) -> Measured:
    """Run `argv` in a fresh process; its wall time, peak RSS and the API calls it made."""
    figures = log.with_suffix(".rusage.json")
    wrapped = [sys.executable, "-I", "-c", _WRAPPER, str(figures), *argv]
    server.reset_calls()
    server.reset_busy()
    with log.open("wb") as out:
        returncode = subprocess.call(
            wrapped, env=dict(env), stdin=subprocess.DEVNULL, stdout=out, stderr=out
        )
    calls, busy = server.calls, server.busy_s
    measured = json.loads(figures.read_text(encoding="utf-8"))
    return Measured(
        returncode,
        float(measured["wall_s"]),
        float(measured["peak_rss_bytes"]) / (1024 * 1024),
        calls,
        busy,
        log.read_text(encoding="utf-8", errors="replace"),
    )


def janitor_command() -> list[str]:
    script = Path(sys.executable).parent / "janitor"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "janitor.cli"]


@contextmanager
def scratch_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="janitor-bench-") as tmp:
        yield Path(tmp)


# -- the report ------------------------------------------------------------------------------


def version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> str:
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        parts = [
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(cells)
        ]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(row) for row in rows)])


def top_operations(calls: Counter[str], count: int) -> str:
    """The `count` most frequent operations, "op n, op n, +k more op(s)"."""
    most = calls.most_common(count)
    text = ", ".join(f"{op} {n}" for op, n in most)
    if rest := len(calls) - len(most):
        text += f", +{rest} more op(s)"
    return text


def per(calls: int, resources: int) -> str:
    """Calls per resource, to four places ("-" when there is no resource)."""
    return f"{calls / resources:.4f}" if resources else "-"


def verdict(value: float, target: float) -> str:
    return f"target < {target:g}: {'met' if value < target else 'MISSED'}"


def calls_table(
    split: Mapping[str, Mapping[str, int]],
    kinds: Sequence[tuple[str, int]],
    shared: str,
    total_resources: int,
    total_calls: int,
) -> str:
    """The listing / metrics / other split per kind (`split[kind]`, and `split["shared"]` for
    the calls no kind made, shown as `shared`), then all of them, with calls per resource."""
    headers = ["kind", "resources", "listing", "metrics", "other", "API calls", "calls/resource"]
    headers.append("metrics/resource")
    rows: list[list[str]] = []
    for kind, resources in (*kinds, (shared, 0)):
        counts = split["shared" if kind == shared else kind]
        calls = sum(counts.values())
        rows.append(
            [
                kind,
                f"{resources:,}" if resources else "-",
                str(counts["listing"]),
                str(counts["metrics"]),
                str(counts["other"]),
                str(calls),
                per(calls, resources),
                per(counts["metrics"], resources),
            ]
        )
    totals = {
        c: sum(counts[c] for counts in split.values()) for c in ("listing", "metrics", "other")
    }
    rows.append(
        [
            "all",
            f"{total_resources:,}",
            str(totals["listing"]),
            str(totals["metrics"]),
            str(totals["other"]),
            str(total_calls),
            per(total_calls, total_resources),
            per(totals["metrics"], total_resources),
        ]
    )
    return table(headers, rows, right={1, 2, 3, 4, 5, 6, 7})
