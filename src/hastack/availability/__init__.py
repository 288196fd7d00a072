"""Availability arithmetic: nines, downtime, MTTF/MTTR, block models and their Monte-Carlo check."""
