"""Placeholder."""
collect = partition = partition_unique = sliding_window = slice = unique = None
