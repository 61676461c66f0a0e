"""The records and states of warnbus: pure data, no I/O."""
