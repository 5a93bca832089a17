// Package demo gives `pathstats serve --demo` something to look at straight
// away: a fake API upstream with a realistic path, status and latency mix
// (Upstream) and synthetic clients that send traffic through the gateway to
// it (Traffic).
package demo
