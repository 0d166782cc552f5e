"""Placeholder: the local sources are being written."""
