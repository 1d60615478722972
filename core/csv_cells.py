"""Every CSV the product writes goes through `csv_writer`: a cell a spreadsheet would run as a
formula (`=HYPERLINK(...)`, `+`, `-`, `@`, a tab or carriage return first) gets a leading `'`, so
text typed by anyone — a record field, a device name, an anonymous request's User-Agent in the audit
log — opens as text in the Admin's spreadsheet. Plain numbers (`-5`, `+3.2e4`) stay as they are:
no spreadsheet runs them. `csv_cell_unguard` undoes the guard exactly (imports read our exports)."""

from __future__ import annotations

import csv
import re
from typing import Any

_FORMULA = re.compile(r"^'*[=+\-@\t\r]")  # '-prefixed too, so unguarding is exact
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_GUARDED = re.compile(r"^'+[=+\-@\t\r]")


def csv_cell_guard(value: Any) -> Any:
    """The cell as a spreadsheet must show it: formula-like text prefixed with `'`."""
    if isinstance(value, str) and _FORMULA.match(value) and not _NUMBER.match(value):
        return "'" + value
    return value


def csv_cell_unguard(text: str) -> str:
    """The text `csv_cell_guard` was given (for importing our own exports)."""
    return text[1:] if _GUARDED.match(text) and not _NUMBER.match(text[1:]) else text


class _GuardedWriter:
    def __init__(self, writer):
        self._writer = writer

    def writerow(self, row):
        return self._writer.writerow([csv_cell_guard(cell) for cell in row])

    def writerows(self, rows):
        for row in rows:
            self.writerow(row)


def csv_writer(file, **kwargs) -> _GuardedWriter:
    """`csv.writer(file)` whose every cell is guarded against formula injection."""
    return _GuardedWriter(csv.writer(file, **kwargs))
