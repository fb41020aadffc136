"""The agent WebSocket protocol: frames, the session state machines of both ends, signed commands, the suite's
synthetic agent and the command round trips."""
