"""Cluster resource manager: the CIB model, and later the scheduler."""
