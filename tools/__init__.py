"""Operational scripts over rgstore; each has `main(argv) -> int` and runs as `python -m tools.<name>`."""
