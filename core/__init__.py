"""Layer 0: what every app stands on and that knows no app — the ServiceError family, the typed Actor,
the request context and client address, secrets at rest, Redis and token buckets, domain events,
database dialect differences, and safe CSV cells."""
