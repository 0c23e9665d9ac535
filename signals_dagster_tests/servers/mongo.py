"""Session fixture for a real mongo server (see ../shared/TEST-SERVERS.md)."""
