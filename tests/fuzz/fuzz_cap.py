"""Coverage-guided fuzzing of the CAP XML and JSON parsers with atheris (libFuzzer).

Property: for any input, `parse_alert` returns an Alert that survives the JSON round trip,
or raises `warnbus.errors.IngestError` with a parser code (malformed, invalid, too_large,
unsupported_type) and a one-line message. Anything else (another exception, another code,
a failed round trip) is a crash: libFuzzer prints it, writes the input to an artifact file
and exits non-zero.

    .venv/bin/python tests/fuzz/fuzz_cap.py -runs=20000            # bounded, fresh corpus
    .venv/bin/python tests/fuzz/fuzz_cap.py -max_total_time=600 -print_final_stats=1

The first input byte picks the content type (sniffed, CAP XML, JSON); the rest is the body.
Unless corpus directories are given, a fresh one in /tmp (or $WARNBUS_FUZZ_DIR) is seeded with
every CAP and JSON file of tests/fixtures/cap (valid and invalid, under each content type); a
dictionary of
CAP element names and XML/JSON tokens steers libFuzzer's mutations. Crash artifacts go to
that directory too (`-artifact_prefix=` overrides). Only warnbus's own Python is
instrumented; lxml, msgspec and GEOS are C and only exercised.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["warnbus"]):
    from warnbus.errors import IngestError
    from warnbus.ingest import alert_to_json, parse_alert, parse_json

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "cap"
CONTENT_TYPES = (None, "application/cap+xml", "application/json")
PARSE_CODES = frozenset({"malformed", "invalid", "too_large", "unsupported_type"})
# For the harness's own test: an untyped exception after a good parse must be a crash.
SELFTEST = os.environ.get("WARNBUS_FUZZ_SELFTEST") == "1"
TOKENS = [
    # CAP 1.0-1.2 element names and namespaces
    *(f"<{n}>" for n in (
        "alert", "identifier", "sender", "sent", "status", "msgType", "scope", "references",
        "info", "category", "event", "urgency", "severity", "certainty", "effective", "onset",
        "expires", "area", "areaDesc", "polygon", "circle", "geocode", "valueName", "value",
        "altitude", "ceiling", "resource", "mimeType", "size", "parameter", "eventCode")),
    "</area>", "</info>", "</alert>", "</polygon>",
    "urn:oasis:names:tc:emergency:cap:1.2", "urn:oasis:names:tc:emergency:cap:1.1",
    "http://www.incident.com/cap/1.0", "http://www.w3.org/2001/XInclude",
    # values
    "Actual", "Alert", "Update", "Cancel", "Public", "Private", "Met", "Geo", "Extreme",
    "Immediate", "Likely", "2026-08-02T04:00:00+08:00", "-00:00", "Z", "29.4,112.4 ",
    "430623101000", "TOWNSHIP", "GB/T 2260",
    # XML
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>", "<!DOCTYPE", "<!ENTITY", "&amp;", "&#x0;",
    "<![CDATA[", "]]>", "<!--", "-->", "<?", "?>", "xmlns=", "xmlns:x=", "encoding=\"UTF-16\"",
    # JSON form
    "\"infos\":", "\"areas\":", "\"polygons\":", "\"circles\":", "\"geocodes\":",
    "\"msg_type\":", "\"cap_version\":", "\"desc\":", "\"radius_km\":", "1e999", "null", "[[",
]


def check_one_input(data: bytes) -> None:
    if not data:
        return
    content_type = CONTENT_TYPES[data[0] % len(CONTENT_TYPES)]
    try:
        alert = parse_alert(data[1:], content_type)
    except IngestError as err:
        if type(err) is not IngestError or err.code not in PARSE_CODES:
            raise AssertionError(f"unexpected error {type(err).__name__} {err.code}") from err
        if not err.message or "\n" in str(err):
            raise AssertionError(f"bad message {str(err)!r}") from err
        return
    if parse_json(alert_to_json(alert)) != alert:
        raise AssertionError("the accepted alert does not survive the JSON round trip")
    if SELFTEST:
        raise RuntimeError("self-test: an exception other than IngestError is a crash")


def _dict_entry(token: str) -> str:
    escaped = token.encode().decode("latin-1").encode("unicode_escape").decode("ascii")
    return '"' + escaped.replace('"', '\\"') + '"'


def prepare(argv: list[str]) -> list[str]:
    """libFuzzer arguments: the given ones, plus a seeded corpus and the dictionary."""
    work = Path(tempfile.mkdtemp(prefix="warnbus-fuzz-", dir=os.environ.get("WARNBUS_FUZZ_DIR")))
    (work / "cap.dict").write_text("\n".join(_dict_entry(t) for t in TOKENS) + "\n")
    args = [*argv, f"-dict={work / 'cap.dict'}"]
    if not any(a.startswith("-artifact_prefix=") for a in argv):
        args.append(f"-artifact_prefix={work}/")
    if not any(a.startswith(("-max_len=", "-len_control=")) for a in argv):
        # Whole seeds from the first run (the largest fixture is ~6 KB), room to grow.
        args += ["-max_len=16384", "-len_control=0"]
    if not any(not a.startswith("-") for a in argv[1:]):
        corpus = work / "corpus"
        corpus.mkdir()
        files = [p for p in sorted(FIXTURES.rglob("*")) if p.suffix in (".xml", ".json")]
        for i, path in enumerate(files):
            for c in range(len(CONTENT_TYPES)):
                (corpus / f"{i:03d}-{c}-{path.name}").write_bytes(bytes([c]) + path.read_bytes())
        args.append(str(corpus))
    print(f"fuzz_cap: work directory {work}", file=sys.stderr, flush=True)
    return args


def main() -> None:
    atheris.enabled_hooks.add("str")
    atheris.enabled_hooks.add("RegEx")
    atheris.Setup(prepare(sys.argv), check_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
