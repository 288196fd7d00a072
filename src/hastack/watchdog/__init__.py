"""hastack's watchdog part: the device driver (:mod:`.device`) and the cluster's health guard
that decides when a node stops feeding it (:mod:`.guard`), the base of watchdog self-fencing."""
