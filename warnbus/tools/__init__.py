"""Beside the engine: the demo, provider simulation wiring, registry generator, bench."""
