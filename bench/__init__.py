"""Benchmarks and profilers of the harness on a GPU (and their tiny CPU modes): run each as
``python -m bench.<name>`` from the repository root; `leaderboards/perf/README.md` lists what each measured."""
