"""Kernel live patches: the /sys/kernel/livepatch state, load/enable/disable, Ksplice tools."""
