"""Library: the DCGAN networks, the model folder they are saved in, and sampling from them.
Imports only the ground floor (dcgan.core)."""
