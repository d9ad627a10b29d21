// Package reconcile is the central batch and serving layer: it finds the
// windows that are complete in InfluxDB, recomputes exact aggregates from
// the raw readings, explains every difference from the edge estimate by a
// counted cause, writes the batch view, and serves the merged view (exact
// where known, edge estimate otherwise). It runs in edged-reconcile, never
// on the edge.
//
// It arrives with the batch-layer issue; until then the package holds only
// this documentation.
package reconcile
