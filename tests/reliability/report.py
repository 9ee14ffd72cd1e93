"""Write the matrix's results: ``tests/reliability/results/latest.md`` and the docs' reliability page.

Only a full matrix writes (the test module decides), so a single selected test never replaces
the last complete report.
"""

from __future__ import annotations

import datetime
from pathlib import Path

from tests.reliability.tally import Row

ROOT = Path(__file__).resolve().parents[2]
RESULTS = Path(__file__).resolve().parent / "results" / "latest.md"
README = ROOT / "docs" / "reliability.md"  # the page whose table sits between the markers
BEGIN, END = "<!-- reliability:begin -->", "<!-- reliability:end -->"


def summary_table(rows: list[Row], titles: dict[str, str]) -> str:
    """Per fault, over every mode: runs (task chains run, one job each), correct, lost, duplicates."""
    lines = ["| fault | runs | correct | lost | duplicates |", "|---|---|---|---|---|"]
    for fault in dict.fromkeys(row.fault for row in rows):
        mine = [row for row in rows if row.fault == fault]
        lines.append(
            f"| {titles.get(fault, fault)} | {sum(r.jobs for r in mine)} | {sum(r.correct for r in mine)} "
            f"| {sum(r.lost for r in mine)} | {sum(r.duplicates for r in mine)} |"
        )
    return "\n".join(lines)


def runs_table(rows: list[Row]) -> str:
    lines = [
        "| fault | mode | jobs submitted | jobs in emulator | correct | lost | duplicates | deferred | seconds |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r.fault} | {r.mode} | {r.submitted} | {r.in_emulator} | {r.correct}/{r.jobs} | {r.lost} "
        f"| {r.duplicates} | {r.deferred} | {r.seconds:.1f} |"
        for r in rows
    ]
    return "\n".join(lines)


def _about(rows: list[Row], jobs: int, seconds: float) -> str:
    import airflow

    modes = len({row.mode for row in rows})
    today = datetime.datetime.now(datetime.UTC).date().isoformat()
    return (
        f"{today}, Airflow {airflow.__version__}, N = {jobs} jobs per fault and mode, {modes} modes, "
        f"{len(rows)} DAG runs in {seconds:.0f} s."
    )


def write(rows: list[Row], titles: dict[str, str], *, jobs: int, seconds: float) -> None:
    """The full report to ``RESULTS``; the summary between the reliability page's markers."""
    about = _about(rows, jobs, seconds)
    problems = [f"- {r.fault} / {r.mode}: {p}" for r in rows for p in r.problems]
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(
        "# Reliability matrix: latest run\n\n"
        f"{about}\n\n"
        "Written by `make reliability` (`pytest -m reliability tests/reliability`); see "
        "`tests/reliability/tally.py` for what each count means.\n\n"
        "## Summary\n\n"
        f"{summary_table(rows, titles)}\n\n"
        "## Each run\n\n"
        f"{runs_table(rows)}\n\n"
        "## Problems\n\n"
        f"{chr(10).join(problems) or 'None.'}\n"
    )
    readme = README.read_text()
    start, end = readme.index(BEGIN) + len(BEGIN), readme.index(END)
    README.write_text(f"{readme[:start]}\n{summary_table(rows, titles)}\n\n{about}\n{readme[end:]}")
