"""Process wiring: configuration, services, the engine's roles, CLI, logs, metrics."""
