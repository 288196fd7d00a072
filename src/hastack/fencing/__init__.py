"""Fencing (STONITH): make sure a lost node is really down before its work moves.

* :mod:`~hastack.fencing.devices` reads fence devices and the fencing topology from the CIB
  (``class="stonith"`` primitives, ``fencing-topology``) and from ha.cf (``stonith``,
  ``stonith_host``), as Pacemaker and heartbeat read them;
* :mod:`~hastack.fencing.fencer` is the fencer, a sans-IO core: which devices can fence a
  node, in which order, with which delays and retries, and the fence history;
* :mod:`~hastack.fencing.runners` and :mod:`~hastack.fencing.ssh_ipmi` run one action of one
  device (fence-agents, cluster-glue ``stonith`` plugins, hastack's external, ssh and ipmi
  devices) as a subprocess;
* :mod:`~hastack.fencing.metadata` reads what a device agent says about itself.
"""
