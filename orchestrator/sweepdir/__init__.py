"""The sweep on a shared filesystem: its directory and index, each trial's state and lease, the read cache and
bad nodes."""
