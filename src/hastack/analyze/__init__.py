"""`hastack analyze`: single points of failure and an availability estimate from a configuration."""
