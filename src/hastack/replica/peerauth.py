"""Peer authentication by challenge-response HMAC (drbd.conf's cram-hmac-alg, shared-secret).

Both sides challenge: each sends a random nonce, answers the peer's nonce with
HMAC(shared-secret, nonce) and checks the peer's answer to its own. A peer that reflects our own
nonce back as its challenge (to have us compute the answer it owes) is refused by
`acceptable_challenge`. Pure functions: nonces are handed in by the caller.
"""

from __future__ import annotations

import hashlib
import hmac

NONCE_SIZE = 32


def respond(alg: str, secret: str, nonce: bytes) -> bytes:
    return hmac.new(secret.encode(), nonce, getattr(hashlib, alg)).digest()


def verify(alg: str, secret: str, nonce: bytes, answer: bytes) -> bool:
    # compare_digest: the comparison's timing must not tell an attacker how much matched.
    return hmac.compare_digest(respond(alg, secret, nonce), answer)


def acceptable_challenge(own_nonce: bytes, peer_nonce: bytes) -> bool:
    return len(peer_nonce) >= 16 and not hmac.compare_digest(own_nonce, peer_nonce)
