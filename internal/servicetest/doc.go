// Package servicetest starts private, throw-away instances of the real
// services edged talks to, for use in tests, in the spirit of
// net/http/httptest:
//
//   - [StartMosquitto] runs an Eclipse Mosquitto MQTT broker;
//   - [StartInfluxd] runs an InfluxDB 1.8 server with Flux and the
//     InfluxDB 2 compatibility API (/api/v2/write, /api/v2/query) enabled.
//
// Every instance listens only on 127.0.0.1, on ports picked at random, and
// keeps all of its state (configuration, data, logs) in a t.TempDir(), so
// tests can run in parallel with each other and with any system-wide
// service. Instances are stopped in t.Cleanup, even when the test fails;
// when it did fail, the tail of the service's log is printed with t.Log.
//
// Tests that need to simulate outages use Stop (SIGTERM, graceful), Kill
// (SIGKILL, a crash) and Restart (start again on the same port with the same
// data directory).
//
// The services are real binaries, not fakes. They are located through
// environment variables or well-known paths (see [StartMosquitto] and
// [StartInfluxd]); `make setup` (scripts/setup-test-env.sh) installs them.
// A missing binary fails the test: it is never skipped, so an incomplete
// environment cannot masquerade as a passing test run.
//
// Child processes are placed in their own process group, so a terminal's
// Ctrl-C reaches only the test binary; on Linux they also get a parent-death
// signal (SIGKILL), so they do not outlive a test binary that is interrupted
// or crashes before its cleanups run.
package servicetest
