"""Session fixture for a real prometheus server (see ../shared/TEST-SERVERS.md)."""
