// Package daemon is the parleyd command line: init, run, version, config
// check and admin. cmd/parleyd/main.go only turns the process (args, environment,
// signals) into a call to Main.
package daemon

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/parley-chat/parley/node"
	"github.com/parley-chat/parley/node/admin"
	"github.com/parley-chat/parley/node/config"
	"github.com/parley-chat/parley/node/nodekey"
)

// ConfigFileName is the config file's name inside a data directory.
const ConfigFileName = "config.toml"

// ErrUsage is returned for a command line that cannot be run; the message
// has been printed.
var ErrUsage = errors.New("usage error")

const usage = `parleyd runs a Parley node.

Usage:
  parleyd init --data DIR [--network ID]   create a node: config file, key and admin token (never overwrites)
  parleyd run [--data DIR | --config FILE] [flags]
                                           run the node until SIGINT or SIGTERM
  parleyd config check [--data DIR | --config FILE]
                                           validate the configuration and print every problem
  parleyd admin [--data DIR] [--json] COMMAND
                                           the admin API: accounts, invites, reports, lottery audit
                                           (parleyd admin help lists the commands)
  parleyd report verify FILE --node PEER_ID
                                           verify a disclosure (a report) offline and print each check
  parleyd peers [--data DIR] [--json]      the nodes this one knows and their state (admin nodes list)
  parleyd version                          print the version

Configuration comes from, lowest to highest: defaults, the config file
(--config, or DIR/config.toml, or $PARLEY_CONFIG), PARLEY_* environment
variables (PARLEY_STORE_CACHE_BYTES sets store.cache_bytes), then flags
(--set key=value for any setting). Shortcut flags of run and config check:
--client-listen, --operator-listen, --p2p-listen (comma-separated
multiaddrs), --bootstrap (comma-separated multiaddrs ending in /p2p/<ID>),
--network, --log-level, --log-format.
`

// Env is what the process gives the command.
type Env struct {
	Args    []string // without the program name
	Environ []string // as os.Environ
	Stdout  io.Writer
	Stderr  io.Writer
}

// Main runs one parleyd command. ctx ending stops `run` gracefully.
func Main(ctx context.Context, e Env) error {
	if len(e.Args) == 0 {
		fmt.Fprint(e.Stderr, usage)
		return ErrUsage
	}
	switch e.Args[0] {
	case "init":
		return cmdInit(e)
	case "run":
		return cmdRun(ctx, e)
	case "config":
		if len(e.Args) < 2 || e.Args[1] != "check" {
			fmt.Fprint(e.Stderr, "usage: parleyd config check [--data DIR | --config FILE]\n")
			return ErrUsage
		}
		return cmdConfigCheck(e)
	case "admin":
		if len(e.Args) > 1 && (e.Args[1] == "help" || e.Args[1] == "--help" || e.Args[1] == "-h") {
			fmt.Fprint(e.Stdout, adminUsage)
			return nil
		}
		return cmdAdmin(ctx, e)
	case "report":
		return cmdReport(e)
	case "peers":
		// parleyd peers = parleyd admin nodes list.
		e.Args = append([]string{"admin", "nodes", "list"}, e.Args[1:]...)
		return cmdAdmin(ctx, e)
	case "version", "--version", "-v":
		fmt.Fprintf(e.Stdout, "parleyd %s\n", node.Version)
		return nil
	case "help", "--help", "-h":
		fmt.Fprint(e.Stdout, usage)
		return nil
	default:
		fmt.Fprintf(e.Stderr, "parleyd: unknown command %q\n\n%s", e.Args[0], usage)
		return ErrUsage
	}
}

func cmdInit(e Env) error {
	fl := flag.NewFlagSet("init", flag.ContinueOnError)
	fl.SetOutput(e.Stderr)
	dir := fl.String("data", "", "data directory to create the node in (required)")
	network := fl.String("network", "", "network ID (default from the defaults: parley-local)")
	if err := fl.Parse(e.Args[1:]); err != nil {
		return ErrUsage
	}
	if *dir == "" || fl.NArg() > 0 {
		fmt.Fprint(e.Stderr, "usage: parleyd init --data DIR [--network ID]\n")
		return ErrUsage
	}
	abs, err := filepath.Abs(*dir)
	if err != nil {
		return err
	}
	cfg := node.DefaultConfig()
	cfg.DataDir = abs
	if *network != "" {
		cfg.Network = *network
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	cfgPath := filepath.Join(abs, ConfigFileName)
	for _, p := range []string{cfgPath, cfg.KeyFile()} {
		if _, err := os.Stat(p); err == nil {
			return fmt.Errorf("parleyd init: %s already exists; init never overwrites a node (remove it yourself if you really mean to)", p)
		}
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return fmt.Errorf("parleyd init: %w", err)
	}
	text := config.Render(&cfg, "Parley node configuration, written by `parleyd init`.\n"+
		"Every setting is listed with its default. Environment variables PARLEY_<SECTION>_<KEY>\n"+
		"and `parleyd run --set section.key=value` override this file.")
	f, err := os.OpenFile(cfgPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("parleyd init: %w", err)
	}
	if _, err := f.Write(text); err != nil {
		_ = f.Close()
		return fmt.Errorf("parleyd init: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("parleyd init: %w", err)
	}
	k, err := nodekey.Create(cfg.KeyFile(), nil)
	if err != nil {
		return fmt.Errorf("parleyd init: %w", err)
	}
	// The admin token: created unless one is already there (`parleyd admin
	// token` may have made it), never overwritten.
	if err := admin.CreateToken(cfg.AdminTokenFile(), nil); err != nil && !errors.Is(err, admin.ErrTokenExists) {
		return fmt.Errorf("parleyd init: %w", err)
	}
	fmt.Fprintf(e.Stdout, "created node %s\n  config: %s\n  key:    %s\n  admin:  %s\nstart it with: parleyd run --data %s\n", k.Public(), cfgPath, cfg.KeyFile(), cfg.AdminTokenFile(), abs)
	return nil
}

// setFlags collects repeated --set key=value flags.
type setFlags []string

func (s *setFlags) String() string     { return strings.Join(*s, ",") }
func (s *setFlags) Set(v string) error { *s = append(*s, v); return nil }

type loadFlags struct {
	fl        *flag.FlagSet
	dir, file *string
	sets      setFlags
	named     map[string]*string
}

// shortcuts are flags for the most used settings; --set covers the rest.
var shortcuts = map[string]string{
	"client-listen":   "client.listen",
	"operator-listen": "operator.listen",
	"log-level":       "log.level",
	"log-format":      "log.format",
	"network":         "network",
	"p2p-listen":      "p2p.listen_addrs",
	"bootstrap":       "p2p.bootstrap",
}

func newLoadFlags(name string, e Env) *loadFlags {
	lf := &loadFlags{fl: flag.NewFlagSet(name, flag.ContinueOnError), named: map[string]*string{}}
	lf.fl.SetOutput(e.Stderr)
	lf.dir = lf.fl.String("data", "", "data directory (reads DIR/config.toml)")
	lf.file = lf.fl.String("config", "", "config file")
	lf.fl.Var(&lf.sets, "set", "override a setting: --set section.key=value (repeatable)")
	for f, key := range shortcuts {
		lf.named[f] = lf.fl.String(f, "", "sets "+key)
	}
	return lf
}

// load resolves the configuration: defaults < file < env < flags.
func (lf *loadFlags) load(e Env) (node.Config, error) {
	cfg := node.DefaultConfig()
	path := *lf.file
	if path == "" && *lf.dir != "" {
		path = filepath.Join(*lf.dir, ConfigFileName)
	}
	if path == "" {
		path = lookupEnv(e.Environ, "PARLEY_CONFIG")
	}
	if path == "" {
		return cfg, errors.New("no configuration: give --data DIR (a directory made by `parleyd init --data DIR`) or --config FILE")
	}
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		dir := filepath.Dir(path)
		return cfg, fmt.Errorf("no node in %s (%s does not exist): create one with `parleyd init --data %s`, then run `parleyd run --data %s`", dir, path, dir, dir)
	}
	if err := config.LoadFile(path, &cfg); err != nil {
		return cfg, err
	}
	if err := config.ApplyEnv(&cfg, e.Environ, "PARLEY_CONFIG", "PARLEY_PASSPHRASE"); err != nil {
		return cfg, err
	}
	var errs []error
	lf.fl.Visit(func(f *flag.Flag) {
		if key, ok := shortcuts[f.Name]; ok {
			if err := config.Set(&cfg, key, f.Value.String()); err != nil {
				errs = append(errs, err)
			}
		}
	})
	for _, kv := range lf.sets {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			errs = append(errs, fmt.Errorf("--set %q: want key=value", kv))
			continue
		}
		if err := config.Set(&cfg, k, v); err != nil {
			errs = append(errs, err)
		}
	}
	if cfg.DataDir == "" && *lf.dir != "" {
		cfg.DataDir = *lf.dir
	}
	if err := errors.Join(errs...); err != nil {
		return cfg, err
	}
	return cfg, cfg.Validate()
}

func lookupEnv(environ []string, name string) string {
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && k == name {
			return v
		}
	}
	return ""
}

func cmdConfigCheck(e Env) error {
	lf := newLoadFlags("config check", e)
	if err := lf.fl.Parse(e.Args[2:]); err != nil {
		return ErrUsage
	}
	if _, err := lf.load(e); err != nil {
		return fmt.Errorf("configuration is invalid:\n%w", err)
	}
	fmt.Fprintln(e.Stdout, "configuration ok")
	return nil
}

func cmdRun(ctx context.Context, e Env) error {
	lf := newLoadFlags("run", e)
	if err := lf.fl.Parse(e.Args[1:]); err != nil {
		return ErrUsage
	}
	cfg, err := lf.load(e)
	if err != nil {
		return err
	}
	log := newLogger(cfg.Log, e.Stderr)
	n, err := node.New(cfg, node.WithLogger(log))
	if err != nil {
		return err
	}
	return n.Run(ctx)
}

func newLogger(c node.LogConfig, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
