"""Sweeps: spec, sweep directory and state, worker, backends, report and the `ghostsweep` CLI."""
