"""The foundation: values and problems, redaction, the env-file parser, sizes, time; it imports nothing of the suite."""
