"""The API service: FastAPI app that serves stored events over HTTP behind Identity-Aware Proxy."""
