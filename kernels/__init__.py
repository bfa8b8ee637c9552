"""Numba kernels: arrays in, arrays and numbers out. Imports numpy and numba only."""
