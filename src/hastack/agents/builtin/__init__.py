"""hastack's own OCF resource agents, each runnable as `python -m hastack.agents.builtin.NAME
ACTION` and installable into an OCF root as `resource.d/hastack/TYPE` (see `install`)."""

# OCF type name -> module under hastack.agents.builtin
BUILTIN_AGENTS: dict[str, str] = {
    "Dummy": "dummy",
    "Stateful": "stateful",
    "anything": "anything",
    "IPaddr2": "ipaddr2",
    "Filesystem": "filesystem",
    "httpcheck": "httpcheck",
    "replica": "replica",
    "nbdfuse": "nbdfuse",
}
