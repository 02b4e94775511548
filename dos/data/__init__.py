"""Datasets: readers of the real benchmarks' on-disk formats, label specs, transforms, and the synthetic benchmark."""
