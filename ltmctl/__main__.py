"""`python -m ltmctl`: the same CLI as the `ltmctl` script."""

from ltmctl.cli import app

app(prog_name="ltmctl")
