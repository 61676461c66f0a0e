"""Optional profiling of a measured window with pyinstrument (`--profile PATH`).

pyinstrument is not a dependency of warnbus: `pip install pyinstrument` to use it. It samples
the whole thread (async_mode disabled), so every engine task shows, not only the one that
started the profiler.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from warnbus.tools.bench.env import BenchError


class WindowProfiler:
    """Accumulates samples over the measured windows of every run, then writes them."""

    def __init__(self, path: Path, interval_s: float = 0.001) -> None:
        try:
            mod: Any = importlib.import_module("pyinstrument")
        except ImportError as e:
            raise BenchError("--profile needs pyinstrument: pip install pyinstrument") from e
        self.path = path
        self._profiler: Any = mod.Profiler(interval=interval_s, async_mode="disabled")

    def start(self) -> None:
        self._profiler.start()

    def stop(self) -> None:
        self._profiler.stop()

    def write(self) -> list[Path]:
        """Write `<path>.html` (interactive) and `<path>.txt` (the call tree); return them."""
        html = self.path.with_suffix(".html")
        text = self.path.with_suffix(".txt")
        html.write_text(self._profiler.output_html(), encoding="utf-8")
        text.write_text(self._profiler.output_text(unicode=True, color=False), encoding="utf-8")
        return [html, text]


class NoProfiler:
    """Stands in when no profile was asked for."""

    def start(self) -> None:
        return None

    def stop(self) -> None:
        return None
