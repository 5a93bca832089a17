// Package gateway is the reverse proxy of pathstats serve's --listen
// listener and the recording middleware it is built from.
//
// A Route maps a path pattern to an upstream under a proxyId (DESIGN §2, §5:
// --upstream URL is the route "default" with pattern "/*", --route
// ID=PATTERN=URL adds more). NewProxy picks the most specific matching route
// for each request, forwards it with net/http/httputil.ReverseProxy and
// records (proxyId, path, status, latency, time) through a
// pathstats.Recorder. Requests that match no route get a 404 and are not
// recorded, so scanners probing random paths cannot grow the statistics.
//
// Middleware records around any http.Handler and can be used on its own by
// Go programs that embed pathstats.
package gateway
