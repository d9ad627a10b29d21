package reconcile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"

	"github.com/edged-io/edged/internal/yamltype"
	"gopkg.in/yaml.v3"
)

// Config is the optional configuration file of edged-reconcile (see
// configs/reconcile.yaml). Flags override it. It holds no secret: the
// token is read from TokenFile.
type Config struct {
	Influx InfluxConfig `yaml:"influx"`
	Run    RunConfig    `yaml:"run"`
}

// InfluxConfig says where the central store is.
type InfluxConfig struct {
	URL    string `yaml:"url"`
	Org    string `yaml:"org"`
	Bucket string `yaml:"bucket"`
	// TokenFile holds the token (one line). Default:
	// $EDGED_RECONCILE_TOKEN_FILE, else the systemd credential
	// $CREDENTIALS_DIRECTORY/influx-token, else no token.
	TokenFile string   `yaml:"token_file"`
	Timeout   Duration `yaml:"timeout"` // per request
}

// RunConfig holds the defaults of `edged-reconcile run`.
type RunConfig struct {
	Devices   []string  `yaml:"devices"`
	View      string    `yaml:"view"`
	Parallel  int       `yaml:"parallel"`
	Timeout   Duration  `yaml:"timeout"`
	Since     Duration  `yaml:"since"`
	ChunkSpan Duration  `yaml:"chunk_span"`
	Progress  *Duration `yaml:"progress"` // nil: 5s; 0 disables
	Report    string    `yaml:"report"`
}

// Duration is a time.Duration written as "90s", "5m", "1h30m" in YAML;
// LoadConfig refuses negative ones.
type Duration = yamltype.Duration

// ErrConfig reports a configuration file that cannot be used.
var ErrConfig = errors.New("reconcile: bad configuration")

var yamlLine = regexp.MustCompile(`(?m)^\s*(?:yaml: )?line (\d+): `)

// LoadConfig reads and checks a configuration file. Errors name the file
// and line.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		msg := strings.TrimPrefix(err.Error(), "yaml: unmarshal errors:\n")
		msg = yamlLine.ReplaceAllString(msg, path+":$1: ")
		if !strings.Contains(msg, path+":") {
			msg = path + ": " + msg
		}
		return nil, fmt.Errorf("%w: %s", ErrConfig, strings.TrimSpace(msg))
	}
	if c.Run.Parallel < 0 {
		return nil, fmt.Errorf("%w: %s: run.parallel %d is negative", ErrConfig, path, c.Run.Parallel)
	}
	for name, d := range map[string]Duration{"influx.timeout": c.Influx.Timeout, "run.timeout": c.Run.Timeout,
		"run.since": c.Run.Since, "run.chunk_span": c.Run.ChunkSpan} {
		if d < 0 {
			return nil, fmt.Errorf("%w: %s: %s %v is negative", ErrConfig, path, name, d)
		}
	}
	if c.Run.Progress != nil && *c.Run.Progress < 0 {
		return nil, fmt.Errorf("%w: %s: run.progress %v is negative", ErrConfig, path, *c.Run.Progress)
	}
	return &c, nil
}
