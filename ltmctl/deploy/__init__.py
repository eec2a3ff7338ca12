"""`ltmctl deploy` below the command layer: package, build (Cloud Build), roll out (Cloud Run), wire delivery
(Pub/Sub push or BigQuery subscription) and access (run.invoker, IAP). No typer or rich here; clients come in."""
