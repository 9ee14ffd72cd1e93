"""``python -m bench [e0 b1 b2 b3 b4 b5 b6 u1]``: run benchmarks, print their tables, write the results.

All of them (the default) write ``bench/results/latest.md``; a subset writes
``bench/results/latest-<keys>.md`` so a quick single run never replaces the full report.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
#: Key -> (module, title), in the order they run.
BENCHMARKS = {
    "e0": ("bench.capacity", "Emulator capacity"),
    "b1": ("bench.b1_waits", "Many waits"),
    "b2": ("bench.b2_submit", "Batch submit"),
    "b3": ("bench.b3_cost", "Client CPU per submit"),
    "b4": ("bench.b4_parse", "DAG parse cost"),
    "b5": ("bench.b5_shared", "Shared rate limit"),
    "b6": ("bench.b6_triggerer", "A real triggerer under load"),
    "u1": ("bench.ui_batch", "UI batch view"),
}


def _isolate(scratch: Path) -> None:
    """A throwaway Airflow home, set before anything imports Airflow; and a byte-code cache for
    the processes we start (this environment may disable byte-code writing, which makes every
    child recompile Airflow for seconds)."""
    os.environ["AIRFLOW_HOME"] = str(scratch / "airflow-home")
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    os.environ["PYTHONPYCACHEPREFIX"] = str(scratch / "pycache")
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)


def _write(markdown: str, keys: list[str]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    full = keys == list(BENCHMARKS)
    target = RESULTS / ("latest.md" if full else f"latest-{'-'.join(keys)}.md")
    partial = target.with_suffix(".md.tmp")
    partial.write_text(markdown)
    partial.replace(target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("keys", nargs="*", metavar="KEY", help=f"any of {', '.join(BENCHMARKS)} (default: all)")
    wanted = parser.parse_args(argv).keys or list(BENCHMARKS)
    unknown = sorted(set(wanted) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    keys = [key for key in BENCHMARKS if key in wanted]
    scratch = Path(tempfile.mkdtemp(prefix="bench-"))
    try:
        _isolate(scratch)
        from bench import machine, report

        began = time.monotonic()
        host = machine.describe()
        print(host.markdown(), "\n", flush=True)
        sections = []
        for key in keys:
            module, title = BENCHMARKS[key]
            print(f"running {key}: {title} ...", flush=True)
            started = time.monotonic()
            try:
                section = importlib.import_module(module).run()
            except Exception as exc:  # one crash must not lose the other results
                traceback.print_exc()
                section = report.failed_section(key, title, exc)
            section.seconds = time.monotonic() - started
            sections.append(section)
            print(section.markdown(), flush=True)
        full = keys == list(BENCHMARKS)
        command = "python -m bench" + ("" if full else " " + " ".join(keys))
        markdown = report.document(host, sections, time.monotonic() - began, command)
        print(f"wrote {_write(markdown, keys)} in {time.monotonic() - began:.0f} s")
        return 1 if any(section.failed for section in sections) else 0
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
