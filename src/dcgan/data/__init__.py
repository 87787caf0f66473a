"""Datasets, uint8 array I/O and offline augmentation."""
