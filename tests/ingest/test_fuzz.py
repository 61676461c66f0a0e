"""Property: for any bytes, the parsers return an Alert or raise IngestError, nothing else.

And every Alert they return survives the JSON round trip.
"""

from __future__ import annotations

import json
import os
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from tests.ingest.helpers import FIXTURES, VALID_FILES
from warnbus.errors import IngestError
from warnbus.ingest import alert_to_json, parse_alert, parse_json

SEEDS = [p.read_bytes() for p in VALID_FILES if p.suffix == ".xml"]
JSON_SEEDS = [json.loads(p.read_bytes()) for p in VALID_FILES if p.suffix == ".json"]
CONTENT_TYPES = st.sampled_from([None, "application/cap+xml", "text/xml", "application/json"])
# WARNBUS_FUZZ_EXAMPLES=20000 for a long run; no example database, so no files in the tree.
FUZZ = settings(
    max_examples=int(os.environ.get("WARNBUS_FUZZ_EXAMPLES", "300")),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# Characters that reach deep into the value parsers (dates, coordinates, enums, references).
XML_CHARS = st.characters(
    exclude_categories=("Cs", "Cc"), exclude_characters="\ufffe\uffff"
) | st.sampled_from("\t\n")
VALUE_TEXT = st.text(alphabet="0123456789+-.,:TZ ZAaE\t\n<&=/_", max_size=40) | st.text(
    XML_CHARS, max_size=20
)


def outcome(body: bytes, content_type: str | None = None) -> None:
    try:
        alert = parse_alert(body, content_type)
    except IngestError as err:
        assert err.code in {"malformed", "invalid", "too_large", "unsupported_type"}
        assert "\n" not in str(err)
        return
    assert parse_json(alert_to_json(alert)) == alert


@FUZZ
@given(body=st.binary(max_size=2000), content_type=CONTENT_TYPES)
def test_arbitrary_bytes(body: bytes, content_type: str | None) -> None:
    outcome(body, content_type)


@FUZZ
@given(
    seed=st.sampled_from(SEEDS),
    edits=st.lists(
        st.tuples(st.integers(0, 10**6), st.integers(0, 40), st.binary(max_size=12)), max_size=4
    ),
)
def test_mutated_bytes(seed: bytes, edits: list[tuple[int, int, bytes]]) -> None:
    body = seed
    for at, cut, insert in edits:
        at %= len(body) + 1
        body = body[:at] + insert + body[at + cut :]
    outcome(body)


@FUZZ
@given(seed=st.sampled_from(SEEDS), data=st.data())
def test_mutated_element_text(seed: bytes, data: st.DataObject) -> None:
    root = etree.fromstring(seed)
    elements = [el for el in root.iter() if isinstance(el.tag, str)]
    for _ in range(data.draw(st.integers(1, 3))):
        el = data.draw(st.sampled_from(elements))
        action = data.draw(st.sampled_from(["text", "drop", "dup"]))
        parent = el.getparent()
        if action == "text" or parent is None:
            el.text = data.draw(VALUE_TEXT)
        elif action == "drop":
            parent.remove(el)
            elements = [e for e in root.iter() if isinstance(e.tag, str)]
        else:
            parent.insert(parent.index(el), etree.fromstring(etree.tostring(el)))
    outcome(etree.tostring(root, encoding="UTF-8", xml_declaration=True))


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | VALUE_TEXT,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def _slots(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key/index path in a JSON document."""
    out = [path]
    items = (
        node.items()
        if isinstance(node, dict)
        else enumerate(node)
        if isinstance(node, list)
        else []
    )
    for key, child in items:
        out.extend(_slots(child, (*path, key)))
    return out


@FUZZ
@given(seed=st.sampled_from(JSON_SEEDS), data=st.data())
def test_mutated_json(seed: dict[str, Any], data: st.DataObject) -> None:
    doc = json.loads(json.dumps(seed))
    path = data.draw(st.sampled_from(_slots(doc)[1:]))
    node = doc
    for key in path[:-1]:
        node = node[key]
    if data.draw(st.booleans()):
        node[path[-1]] = data.draw(JSON_VALUES)
    elif isinstance(node, dict):
        del node[path[-1]]
    else:
        node.pop(path[-1])
    outcome(json.dumps(doc, ensure_ascii=False).encode(), "application/json")


def test_seeds_are_valid() -> None:
    assert SEEDS and JSON_SEEDS
    for body in SEEDS:
        parse_alert(body)
    assert (FIXTURES / "rainstorm-red.json").exists()
