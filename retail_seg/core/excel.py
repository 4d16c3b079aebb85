"""Excel workbooks as CSV: every sheet streamed row by row, so a big workbook never sits in memory."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

from retail_seg.core.mappings import SourceFormatError


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    return str(value)


def workbook_to_csv(path: Path, out: Path, name: str | None = None) -> Path:
    """Write every sheet of a workbook, in order, under the first sheet's header; return `out`.

    `name` is the workbook's name for messages (the file read may be a snapshot of it).

    Exports split across sheets (UCI Online Retail II has one per year) load as one table. A sheet
    whose header differs from the first one's is an error naming both, not a silent misalignment.
    """
    from openpyxl import load_workbook

    name = name or path.name

    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except Exception as error:  # openpyxl raises several unrelated types for a file that is not a workbook
        raise SourceFormatError(f"{name}: not a readable Excel workbook: {error}") from error
    header: list[str] | None = None
    try:
        with out.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            for sheet in workbook.worksheets:
                rows = sheet.iter_rows(values_only=True)
                first = next(rows, None)
                if first is None:
                    continue
                names = [_text(v).strip() for v in first]
                if header is None:
                    header = names
                    writer.writerow(header)
                elif [n.lower() for n in names] != [h.lower() for h in header]:
                    raise SourceFormatError(
                        f"{name}: sheet '{sheet.title}' has columns {', '.join(names)}; "
                        f"the first sheet has {', '.join(header)}"
                    )
                for row in rows:
                    if any(v is not None for v in row):
                        writer.writerow([_text(v) for v in row])
    finally:
        workbook.close()
    if header is None:
        raise SourceFormatError(f"{name}: the workbook has no rows")
    return out
