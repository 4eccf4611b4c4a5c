"""Client side of node management: fingerprinting, registration and heartbeats."""
