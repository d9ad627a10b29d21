package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/edged-io/edged/internal/config"
	"github.com/edged-io/edged/internal/daemon"
)

// loadConfig reads the file given with -c, or the embedded defaults.
func loadConfig(path string) (*config.Config, error) {
	if path == "" {
		return config.Default(), nil
	}
	return config.Load(path)
}

func runDaemon(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("run", stderr)
	path := fs.String("c", "", "config file (default: the embedded defaults: sim + thermal sensors, embedded broker, ./data)")
	dataDir := fs.String("data-dir", "", "override data_dir")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	if *dataDir != "" {
		cfg.DataDir = *dataDir
	}
	var level slog.Level
	level.UnmarshalText([]byte(cfg.LogLevel))
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	d, err := daemon.New(cfg, logger)
	if err != nil {
		return err
	}
	return d.Run(ctx)
}

func runCheck(args []string, stdout io.Writer) error {
	fs := newFlags("check", stdout)
	path := fs.String("c", "", "config file to check (required)")
	print := fs.Bool("print", false, "print the effective configuration (defaults filled in; secrets are file names, never values)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *path == "" {
		return fmt.Errorf("%w: check needs -c FILE", errUsage)
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	// The TLS files are read and parsed now, as the daemon will at start
	// (the password and token files are not: they may be systemd
	// credentials only the service sees).
	if _, err := cfg.MQTTTLSConfig(); err != nil {
		return err
	}
	if *print {
		fmt.Fprint(stdout, cfg.Redacted())
		return nil
	}
	fmt.Fprintf(stdout, "%s: OK\n", *path)
	return nil
}
