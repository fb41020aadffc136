"""What a run checks and how it reaches it: the target's settings, its inventory of hosts, the connections to
them, its secrets and the release it expects."""
