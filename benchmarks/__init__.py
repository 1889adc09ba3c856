"""Performance checks for reading-group-bot: `make bench` runs benchmarks/run.py."""
