"""Placeholder."""
buffer = delay = latest = map_async = rate_limit = timed_window = timed_window_unique = None
