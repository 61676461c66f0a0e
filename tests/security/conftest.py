"""Fixtures of the security tests (re-exported from seckit)."""

from __future__ import annotations

from seckit import api_client, provider_world

__all__ = ["api_client", "provider_world"]
