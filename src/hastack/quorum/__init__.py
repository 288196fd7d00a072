"""The quorum server (`hastack qserver`) and its client: one extra vote for one partition.

- `protocol`: frames, signed JSON messages, replay protection (sans-IO)
- `server`: QServerCore, the ffsplit decision and the safety argument (sans-IO)
- `client`: QClientCore, one per cluster node (sans-IO)
- `daemon`: the asyncio server (`serve`, `QServer`)
- `link`: the node's asyncio shell (`QuorumLink`) and `query_status`
"""

from hastack.quorum.client import QClientCore
from hastack.quorum.server import ClusterSpec, QServerCore, margin, parse_tie_breaker

__all__ = ["ClusterSpec", "QClientCore", "QServerCore", "margin", "parse_tie_breaker"]
