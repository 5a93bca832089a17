// Package pathstats holds the domain types and backend interfaces of pathstats:
// per-path request statistics for an API gateway, recorded through a queue into
// hourly SQL aggregates. Backends live in their own packages (nats, sqlite, …);
// wiring lives in cmd/pathstats.
package pathstats
