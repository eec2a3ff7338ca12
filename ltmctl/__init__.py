"""ltmctl: operate the LTM Pub/Sub → BigQuery → Cloud Run pipeline, on Google Cloud or on local emulators."""

__version__ = "0.1.0"
