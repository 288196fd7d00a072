"""The Cluster Information Base: model, XML reading and writing."""
