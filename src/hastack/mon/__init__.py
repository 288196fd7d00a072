"""hastack's mon: service monitoring and alerting that reads mon 1.3's mon.cf, runs its
monitor and alert scripts, speaks its client and trap protocols, and can move cluster
resources."""
