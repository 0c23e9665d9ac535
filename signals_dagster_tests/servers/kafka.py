"""Session fixture for a real kafka server (see ../shared/TEST-SERVERS.md)."""
