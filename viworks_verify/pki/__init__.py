"""Certificates, SPKI pins and public keys: parsed, chained and compared, never a private key shown."""
