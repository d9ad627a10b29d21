// Command edged-reconcile is the central batch and serving job: it
// recomputes exact aggregates from the raw readings edged devices ship to
// InfluxDB, reconciles them with the edge estimates and serves the merged
// view. It never links the edge's sensor or MQTT code (a test checks).
//
// `run` and `query` arrive with the batch-layer issue; this build knows
// only `version` and `help`, and says so for the rest.
package main

import (
	"fmt"
	"os"
	"runtime/debug"
)

const usage = `edged-reconcile — central reconciliation for edged devices

Usage:
  edged-reconcile version    print the version
  edged-reconcile help       this text

Not in this build yet: run, query (see the project's batch-layer issue).
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	switch os.Args[1] {
	case "version", "--version":
		v := "devel"
		if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
		fmt.Printf("edged-reconcile %s\n", v)
	case "help", "-h", "--help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "edged-reconcile: %q is not in this build yet\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
}
