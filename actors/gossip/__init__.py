"""Gossip: SWIM with Lifeguard (``core``), the Serf layer (``serf``) and the pool actor (``member``).

Wire messages are in ``messages`` (tags 200-249), timings and limits in
``config`` (memberlist's LAN / WAN / local profiles and a test profile).
"""
