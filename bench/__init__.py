"""Benchmarks: each measures ltmctl against a baseline in the same run and prints the ratio (DESIGN §8).

Run `python -m bench NAME` or `python -m bench all`; results also go to bench/results/NAME.json.
"""
