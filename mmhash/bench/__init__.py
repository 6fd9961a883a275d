"""Benchmark grids: expansion and validation, the runner, the SQLite store, tables and exports."""
