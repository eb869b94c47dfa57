"""Benchmarks: detection quality and speed (run by `make bench`, not by `make test`)."""
