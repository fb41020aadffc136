"""The TLS edge: how the suite reaches it, what it serves (certificate, TLS versions), and whether the agent's
ports are reachable around it."""
