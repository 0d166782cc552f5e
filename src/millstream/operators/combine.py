"""Placeholder."""
combine_latest = union = zip = zip_latest = None
