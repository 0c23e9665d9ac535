"""The quality gate: checks on each window's records before publishing, their history."""
