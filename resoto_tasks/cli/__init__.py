"""The ``resoto-tasks`` command line (typer + rich)."""
