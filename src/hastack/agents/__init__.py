"""Resource agents (OCF, LSB, heartbeat R1, systemd) and the node-local executor."""
