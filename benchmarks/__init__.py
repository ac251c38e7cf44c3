"""Benchmarks of miripersist against the notebook method and the plain floors."""
