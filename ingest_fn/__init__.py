"""The ingest function: Pub/Sub push → decode → validate against the contract → BigQuery, or dead-letter."""
