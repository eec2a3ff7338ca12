"""The services' logs: entries.py (shared), files.py (the local stack's files), cloud_logging.py (Cloud
Logging)."""
