"""The path of an alert, in order: accept, lifecycle (plan), dispatch, escalate, ack."""
