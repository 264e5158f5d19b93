"""Benchmarks of Drukte, run on demand (`make bench`), never part of `make test`."""
