"""Heartbeat membership, quorum and DC election: sans-IO cores fed events with an explicit now."""
