"""Library: dataset loaders, chunked uint8 array files and offline augmentation. Imports only the
ground floor (dcgan.core)."""
