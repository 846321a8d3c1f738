"""Benchmark suite of tabpriv (see benchmarks/README.md)."""
