// Package e2e holds end-to-end tests of the real edged binary against the
// real mosquitto: a known dataset published with QoS 1 must come out as
// exactly the windows computed independently here, with and without kill -9
// of the daemon in the middle of ingest.
package e2e
