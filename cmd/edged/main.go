// Command edged is the edge daemon: it reads sensors into a local
// write-ahead log, aggregates and alerts in-stream, and ships the log to a
// central store. See the README and `edged help`.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/edged-io/edged/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
