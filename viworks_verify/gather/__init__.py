"""Snapshots: every host's facts read once per run, concurrently (in a child process when it can), then judged by
the checks; recorded snapshots replay a run with no host."""
