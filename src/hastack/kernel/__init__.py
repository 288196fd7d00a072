"""The kernel-side HA settings: panic profile, kexec, live patches, bonding; checked and applied."""
