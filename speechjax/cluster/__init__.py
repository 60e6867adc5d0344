"""Clustering for HuBERT targets: k-means in JAX (`kmeans`) and its quality against phones (`quality`)."""
