"""Readers (and synthetic writers, for tests and the demo) of each neural data format."""
