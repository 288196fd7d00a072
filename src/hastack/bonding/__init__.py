"""Channel bonding: read /proc/net/bonding, configure bonds via sysfs, watch for degraded bonds."""
