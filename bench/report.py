"""Result sections and their Markdown: every benchmark returns a :class:`Section`.

One shape for all of them keeps ``latest.md`` uniform and lets ``__main__`` print and write
results without knowing what each benchmark measured.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Goal:
    """A target to report against: ``met`` is None when the figure could not be measured."""

    figure: str
    goal: str
    measured: str
    met: bool | None

    @property
    def verdict(self) -> str:
        return {True: "met", False: "**not met**", None: "n/a"}[self.met]


@dataclass(frozen=True)
class Table:
    columns: Sequence[str]
    rows: Sequence[Sequence[str]]
    title: str = ""

    def markdown(self) -> str:
        lines = [f"**{self.title}**", ""] if self.title else []
        lines.append("| " + " | ".join(self.columns) + " |")
        lines.append("|" + "|".join("---" if i == 0 else "--:" for i in range(len(self.columns))) + "|")
        lines.extend("| " + " | ".join(row) + " |" for row in self.rows)
        return "\n".join(lines)


@dataclass
class Section:
    """One benchmark's results: what ran (``setup``), its tables, its goals, and notes."""

    key: str
    title: str
    setup: str
    tables: list[Table] = field(default_factory=list)
    goals: list[Goal] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    failed: bool = False

    def markdown(self) -> str:
        parts = [f"## {self.key.upper()} {self.title}", "", self.setup, ""]
        for table in self.tables:
            parts += [table.markdown(), ""]
        if self.goals:
            rows = [(g.figure, g.goal, g.measured, g.verdict) for g in self.goals]
            parts += [Table(("goal", "target", "measured", "verdict"), rows).markdown(), ""]
        parts += [f"- {note}" for note in self.notes]
        parts += ["", f"_{self.key} took {self.seconds:.0f} s._", ""]
        return "\n".join(parts)


def failed_section(key: str, title: str, error: BaseException) -> Section:
    """A section for a benchmark that crashed, so the others still get written."""
    return Section(key, title, f"**Did not complete:** `{type(error).__name__}: {error}`", failed=True)


def document(host: Table, sections: Sequence[Section], seconds: float, command: str) -> str:
    """The whole report: machine, every goal at a glance, then each benchmark in full."""
    goals = [(s.key, g.figure, g.goal, g.measured, g.verdict) for s in sections for g in s.goals]
    parts = [
        "# airflow-provider-ci benchmarks",
        "",
        f"`{command}` (or `make bench`); whole run {seconds:.0f} s. Ratios compare against a baseline "
        "measured in the same run on the same machine; goals are reported, never asserted. "
        "See bench/README.md for what each benchmark measures.",
        "",
        host.markdown(),
        "",
        Table(("", "goal", "target", "measured", "verdict"), goals, "Goals").markdown(),
        "",
    ]
    return "\n".join(parts + [section.markdown() for section in sections])


def num(value: float, digits: int = 1) -> str:
    return f"{value:,.{digits}f}"


def ratio(value: float, digits: int = 2) -> str:
    return f"{value:.{digits}f}×"
