"""Benchmarks behind `medkd bench …`: speed claims are measured here, not in timed tests."""
