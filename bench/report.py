"""The benchmark table: one row per figure, with its baseline and target when it has one."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Row:
    """One line of the table. ``met`` is None when the row has no target."""

    section: str
    figure: str
    adapter: str
    baseline: str = ""
    ratio: str = ""
    target: str = ""
    met: bool | None = None


HEADERS = ("", "figure", "adapter", "baseline", "ratio", "target", "")


def _cells(row: Row) -> tuple[str, ...]:
    verdict = {True: "met", False: "MISSED", None: ""}[row.met]
    return (row.section, row.figure, row.adapter, row.baseline, row.ratio, row.target, verdict)


def markdown(rows: list[Row]) -> str:
    """A Markdown table (also readable as plain text in a terminal)."""
    table = [HEADERS, *(_cells(row) for row in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(HEADERS))]

    def line(cells: tuple[str, ...]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(HEADERS), rule, *(line(cells) for cells in table[1:])])
