"""Strict loading of the TOML data files of `rules` (unknown keys are errors naming the key)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import TypeVar

import msgspec

from warnbus.errors import ConfigError

HERE = Path(__file__).resolve().parent

_T = TypeVar("_T")


def convert(raw: object, schema: type[_T], where: str) -> _T:
    """Convert decoded TOML into `schema`; ConfigError names `where` and msgspec's path."""
    try:
        return msgspec.convert(raw, schema, strict=True)
    except msgspec.ValidationError as e:
        # msgspec says e.g. "Object contains unknown field `foo` - at `$.chain[1]`".
        raise ConfigError(f"{where}: {e}") from e


def load_toml(path: str | Path | None, default_name: str, schema: type[_T]) -> tuple[_T, Path]:
    """Read `path` (or the bundled `default_name`) into `schema`; ConfigError names the key."""
    where = Path(path) if path is not None else HERE / default_name
    try:
        raw = tomllib.loads(where.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"{where}: cannot read: {e.strerror or e}") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{where}: not valid TOML: {e}") from e
    return convert(raw, schema, str(where)), where
