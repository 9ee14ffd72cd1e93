"""Benchmarks of airflow-provider-ci against its local CI emulator; see bench/README.md.

Figures are ratios against a baseline measured in the same run, so they stay meaningful on a
small, noisy machine; goals are reported as met or not, never asserted.
"""
