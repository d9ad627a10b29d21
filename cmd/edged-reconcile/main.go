// Command edged-reconcile is the central batch and serving job: it
// recomputes exact aggregates from the raw readings edged devices ship to
// InfluxDB, reconciles them with the edge estimates and serves the merged
// view. It never links the edge's sensor or MQTT code (a test checks).
// See package sync/reconcile for the commands, the schema and the exit
// codes.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/edged-io/edged/sync/reconcile"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := reconcile.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
