"""A run reached from another process: its owner serves the run API over a Unix socket
that only its user can reach; viewers and the shell connect to it."""
