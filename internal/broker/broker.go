// Package broker runs the embedded MQTT broker (mochi-mqtt) that edged
// starts when no broker is configured, so that a fresh install has
// somewhere to publish readings and alerts with nothing else installed.
package broker

import (
	"context"
	"fmt"
	"log/slog"
	"net"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// Broker is an embedded MQTT broker listening on one TCP address.
type Broker struct {
	addr   string
	logger *slog.Logger
}

// New returns a broker for addr (host:port). It does not listen yet.
func New(addr string, logger *slog.Logger) *Broker {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Broker{addr: addr, logger: logger}
}

// Run listens and serves until ctx ends. Anonymous clients are allowed:
// the listener is meant for loopback or a trusted LAN.
func (b *Broker) Run(ctx context.Context, ready func()) error {
	// Bind first so that a port conflict is a clear error, not a log line.
	ln, err := net.Listen("tcp", b.addr)
	if err != nil {
		return fmt.Errorf("embedded broker: listen on %s: %w (is another broker running? set mqtt.broker to use it)", b.addr, err)
	}
	ln.Close()
	s := mochi.New(&mochi.Options{Logger: b.logger.With("component", "broker"), InlineClient: false})
	if err := s.AddHook(new(auth.AllowHook), nil); err != nil {
		return fmt.Errorf("embedded broker: %w", err)
	}
	if err := s.AddListener(listeners.NewTCP(listeners.Config{ID: "tcp", Address: b.addr})); err != nil {
		return fmt.Errorf("embedded broker: %w", err)
	}
	if err := s.Serve(); err != nil {
		return fmt.Errorf("embedded broker: %w", err)
	}
	b.logger.Info("embedded MQTT broker listening", "addr", b.addr)
	if ready != nil {
		ready()
	}
	<-ctx.Done()
	return s.Close()
}
