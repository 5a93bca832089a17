//go:build tools

// Package deps pins modules that packages under construction need, so
// go.mod holds them before their first import lands.
package deps

import (
	_ "github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/redis/go-redis/v9"
)
