"""The backend host: its containers and their files and listeners, nginx's configuration, the agent's configuration,
and the agent's HTTP API (with its tokens)."""
