"""Campaign state in Redis: key names, the store (the one owner), lanes, timers."""
