"""Session fixture for a real s3 server (see ../shared/TEST-SERVERS.md)."""
