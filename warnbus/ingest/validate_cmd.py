"""`warnbus validate FILE...`: parse each file as CAP XML or JSON and report; nothing is sent."""

from __future__ import annotations

import os
import sys
from typing import TextIO

from warnbus.errors import IngestError
from warnbus.ingest import DEFAULT_MAX_BODY, parse_alert


def validate_paths(paths: list[str], out: TextIO) -> int:
    """Print `ok FILE` or `error FILE: reason` per file; return 0 only if every file is ok."""
    failed = 0
    for path in paths:
        reason = _check(path)
        if reason is None:
            out.write(f"ok {path}\n")
        else:
            failed += 1
            out.write(f"error {path}: {' '.join(reason.split())}\n")
    return 1 if failed else 0


def _check(path: str) -> str | None:
    """The reason a file is not a valid alert, or None. The form is sniffed from the content."""
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size > DEFAULT_MAX_BODY:  # do not read a huge file only to refuse it
                return f"file is {size} bytes; the limit is {DEFAULT_MAX_BODY}"
            body = fh.read()
    except OSError as exc:
        return f"cannot read file: {exc.strerror or exc}"
    try:
        parse_alert(body)
    except IngestError as exc:
        return str(exc)
    return None


def main(argv: list[str] | None = None) -> int:
    return validate_paths(sys.argv[1:] if argv is None else argv, sys.stdout)


if __name__ == "__main__":
    raise SystemExit(main())
