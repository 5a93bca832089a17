// Command pathstats runs the pathstats server and its tools.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `pathstats — per-path request statistics for an API gateway

Usage:
  pathstats serve [flags]     run gateway, ingest, queue, aggregator and admin API
  pathstats migrate status|set|force-new|force-old|comparison|rollout|rollout-status|abort
                              canary config and staged rollout of GET /api/admin/paths
  pathstats legacy stats|export -o FILE|cleanup|decommission
                              retire the legacy live-counter system
  pathstats archive list|run|restore --from T --to T
                              hours older than --retention, archived as Parquet
  pathstats loadgen [flags]   drive load against a running server (benchmarks)
  pathstats help              show this text

Run "pathstats <command> -h" for a command's flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "pathstats:", err)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("missing command")
	}
	switch args[0] {
	case "serve":
		return runServe(ctx, args[1:], stderr)
	case "migrate":
		return runMigrate(ctx, args[1:], stdout, stderr)
	case "legacy":
		return runLegacy(ctx, args[1:], stdout, stderr)
	case "loadgen":
		return runLoadgen(ctx, args[1:], stdout, stderr)
	case "archive":
		return runArchive(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", args[0])
	}
}
