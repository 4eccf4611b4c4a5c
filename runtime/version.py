"""The Nomad release whose behaviour this agent reproduces (NOMAD.md): shown in the banner,
/v1/agent/self, the gossip ``build`` tag (so Nomad tooling reads it) and ``nomad version``.
Its own module, so the CLI prints it without importing the agent."""

VERSION = "2.0.6"
