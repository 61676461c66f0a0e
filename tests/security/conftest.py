"""Fixtures of the security tests (re-exported from seckit)."""

from __future__ import annotations

from seckit import api_client

__all__ = ["api_client"]
