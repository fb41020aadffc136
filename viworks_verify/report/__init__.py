"""What a run reports: evidence and figures, redaction, drift between snapshots (canonical facts), waivers, the
JSON summary and the HTML report's top."""
