"""Clustering for HuBERT targets: features to cluster, k-means in JAX, labels and their quality."""
