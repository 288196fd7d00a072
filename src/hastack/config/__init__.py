"""Configuration: one parser per format, producing frozen typed objects (hastack.config.model)."""
