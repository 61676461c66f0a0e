"""`warnbus validate FILE...`: parse each file as CAP XML or JSON and report; nothing is sent."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import TextIO

from warnbus.errors import ConfigError, IngestError
from warnbus.ingest import DEFAULT_MAX_BODY, parse_alert
from warnbus.ingest.signature import (
    AT_NOW,
    SignaturePolicy,
    parse_at,
    parse_policy,
    read_trust_files,
    validity_time,
    verify_signature,
)


def validate_paths(
    paths: list[str],
    out: TextIO,
    *,
    signature: str = "ignore",
    trust: Sequence[str] = (),
    at: str = AT_NOW,
) -> int:
    """Print `ok FILE` or `error FILE: reason` per file; return 0 only if every file is ok.

    `signature` is the XML-DSig policy (require, verify, ignore) and `trust` the PEM files of
    the trust store; `at` when certificates must have been valid: `now`, `sent` (each
    alert's own <sent>, for archives) or an ISO-8601 time. A bad policy, time or trust store
    raises ConfigError before any file is read.
    """
    policy = parse_policy(signature)
    if trust and policy is SignaturePolicy.IGNORE:
        raise ConfigError("--trust needs --signature verify or require")
    when = parse_at(at)
    if when != AT_NOW and policy is SignaturePolicy.IGNORE:
        raise ConfigError("--at needs --signature verify or require")
    pems = read_trust_files(trust)
    failed = 0
    for path in paths:
        reason = _check(path, policy, pems, when)
        if reason is None:
            out.write(f"ok {path}\n")
        else:
            failed += 1
            out.write(f"error {path}: {' '.join(reason.split())}\n")
    return 1 if failed else 0


def _check(
    path: str, policy: SignaturePolicy, pems: tuple[bytes, ...], at: datetime | str
) -> str | None:
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
        alert = parse_alert(body)
        if policy is SignaturePolicy.IGNORE:
            return None
        if alert.cap_version == "json":  # JSON has no XML signature to carry
            if policy is SignaturePolicy.REQUIRE:
                return "Signature: a JSON alert cannot carry the required XML signature"
            return None
        verify_signature(body, policy, pems, at=validity_time(at, alert.sent))
    except IngestError as exc:
        return str(exc)
    return None


def main(argv: list[str] | None = None) -> int:
    return validate_paths(sys.argv[1:] if argv is None else argv, sys.stdout)


if __name__ == "__main__":
    raise SystemExit(main())
