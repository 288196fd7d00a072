"""Real clusters on one machine, for the lab tests, the demo and the benchmarks.

netns      hosts in network namespaces, links as bridges, nftables cuts, process control
process    a started command controlled by PID
cluster    hastack node daemons in namespace hosts or on loopback addresses
heartbeat  the real peer, Linux-HA heartbeat 3, in namespace hosts
measure    failover timing (SIGKILL -> removal, -> new DC)
logwatch   reading log lines as they are written
demo       `hastack demo`
"""
