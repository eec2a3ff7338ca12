"""The fleet view: `metrics`, `status` and `verify` across many environments at once (`--env 'prod-*'`,
`--env dev,prod`), one row per environment, worst first.

selection.py reads `--env` into environments; runner.py runs one function per environment side by side and turns
each failure into a row; rows.py orders rows and decides the exit code; metrics.py, status.py and verify.py shape
each command's row (metrics.py reads environments that share a Cloud Monitoring metrics scope with one query per
figure, scope.py); render.py writes the table or JSON.
"""
