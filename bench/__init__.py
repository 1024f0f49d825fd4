"""Benchmarks: ``python -m video_analysis.bench`` (``make bench``); see bench/README section in the top README."""
