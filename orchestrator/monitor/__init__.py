"""Watching a sweep: `status` and what `submit` shows while its trials run."""
