"""`python -m metamedia` runs the CLI."""

from metamedia.cli import app

app()
