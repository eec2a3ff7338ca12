"""The pipeline's figures: figures.py (rows, sparkline, PNG), scrape.py (the local stack's /metrics),
cloud_monitoring.py (Cloud Monitoring), dashboards.py (the Cloud Monitoring dashboard and alert policies)."""
