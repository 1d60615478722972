"""The REST toolkit every app's `api/` folder uses (knows no app): base view, problem+json mapping of
ServiceError, pagination, idempotency, conditional requests, OpenAPI schema and docs."""
