"""Putting work on a backend and running it: submit, rerun, cancel, extend, and the worker every backend runs."""
