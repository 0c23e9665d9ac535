"""Session fixture for a real http server (see ../shared/TEST-SERVERS.md)."""
