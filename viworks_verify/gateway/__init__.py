"""A gateway host: the agent's systemd unit, its .env and effective configuration, its files, process, listeners
and journal, and whether it can come Online."""
