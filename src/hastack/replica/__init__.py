"""hastack's replicated block device: DRBD's model, exported over NBD (docs/compat.md, DRBD).

Reading drbd.conf as drbdadm 8.4 does: `config` (the entry points: load_drbd_conf,
parse_drbd_conf, select_host) over `tokens` (the scanner), `syntax` (the grammar, includes,
skip), `options` (every option's type, unit, range, default and whether hastack acts on it) and
`build` (inheritance and drbdadm's checks), into the frozen objects of `model`; `dump` writes
them back as drbd.conf. The replication engine, the NBD server and the `hastack replica`
commands build on these.
"""
