"""Jobs, evaluations and scheduling: job validation, the pure scheduler, and the leader's
eval broker, scheduling workers and node drainer actors."""
