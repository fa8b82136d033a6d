// Command testnet starts a Parley network on this machine and watches it
// work: `make testnet`, or `go run ./testnet -h` for the flags. It builds
// parleyd, starts the nodes on loopback, bootstrapped into one network,
// drives simulated users against them, prints a live summary and the URLs,
// and ends by checking that every acknowledged message arrived exactly once
// (exit status 1 otherwise). Ctrl-C stops everything cleanly.
package main

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/parley-chat/parley/testnet/sim"
)

//go:embed prometheus/prometheus.yml
var prometheusConfig []byte

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "testnet:", err)
		if errors.Is(err, errFailed) {
			os.Exit(1)
		}
		os.Exit(2)
	}
}

var errFailed = errors.New("the run failed its checks")

func run() error {
	var cfg sim.Config
	fl := flag.NewFlagSet("testnet", flag.ContinueOnError)
	fl.IntVar(&cfg.Nodes, "nodes", 3, "parleyd processes to start")
	fl.IntVar(&cfg.Users, "users", 30, "simulated users (one spammer, about one in eight reporters, the rest chatters)")
	fl.DurationVar(&cfg.Duration, "duration", 30*time.Second, "how long users keep starting conversations (the drain follows)")
	fl.DurationVar(&cfg.DrainTimeout, "drain", 60*time.Second, "longest wait at the end for every acknowledged message to arrive")
	fl.Int64Var(&cfg.Seed, "seed", 1, "seed of the users' choices and of the scenario's victim")
	fl.StringVar(&cfg.Dir, "dir", "", "data directory for the nodes, keystores and Prometheus (default: a new temporary directory, removed at the end)")
	fl.StringVar(&cfg.Scenario, "scenario", sim.ScenarioSteady, "steady, kill (SIGKILL a node and restart it), partition (cut a node off and heal) or churn (nodes join and leave)")
	fl.DurationVar(&cfg.Epoch, "epoch", 500*time.Millisecond, "the lottery's epoch length")
	fl.StringVar(&cfg.Parleyd, "parleyd", "", "parleyd binary to run (default: build ./cmd/parleyd)")
	fl.BoolVar(&cfg.BothLeave, "both-leave", false, "both sides leave after their goodbyes, so their close notices cross")
	prom := fl.String("prometheus", "auto", "prometheus binary to start: auto (from PATH if installed), none, or a path")
	keep := fl.Bool("keep", false, "keep the temporary directory at the end")
	summaryJSON := fl.String("summary-json", "", "write the run's figures (throughput, latency, time to pair, memory per node) and raw loopback HTTP limits measured after it to this file, as JSON (make bench reads it)")
	verbose := fl.Bool("v", false, "log details (user errors, node exits) to stderr")
	if err := fl.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	cfg.Out = os.Stdout
	cfg.Logger = slog.New(slog.DiscardHandler)
	if *verbose {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	cfg.PrometheusConfig = prometheusConfig
	switch *prom {
	case "none":
	case "auto":
		if p, err := exec.LookPath("prometheus"); err == nil {
			cfg.Prometheus = p
		} else {
			fmt.Println("prometheus is not installed: no Prometheus (Debian: apt install prometheus)")
		}
	default:
		cfg.Prometheus = *prom
	}
	if cfg.Dir == "" {
		dir, err := os.MkdirTemp("", "parley-testnet-")
		if err != nil {
			return err
		}
		cfg.Dir = dir
		if !*keep {
			defer func() { _ = os.RemoveAll(dir) }()
		}
	}
	if cfg.Parleyd == "" {
		bin := filepath.Join(cfg.Dir, "bin", "parleyd")
		fmt.Println("building parleyd ...")
		out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/parley-chat/parley/cmd/parleyd").CombinedOutput()
		if err != nil {
			return fmt.Errorf("go build parleyd: %w\n%s", err, out)
		}
		cfg.Parleyd = bin
	}
	res, err := sim.Run(ctx, cfg)
	if res != nil && *summaryJSON != "" {
		if werr := writeSummary(ctx, *summaryJSON, res.Summary(cfg)); werr != nil {
			return errors.Join(err, werr)
		}
	}
	if err != nil {
		return err
	}
	if !res.OK() {
		return errFailed
	}
	return nil
}

// probeTime is how long each raw HTTP probe of -summary-json runs.
const probeTime = 2 * time.Second

// writeSummary measures the raw loopback HTTP limits (one client, for the
// latency floor; 16, for the round trips per second), now that the nodes
// have stopped, adds them to sum and writes it to path.
func writeSummary(ctx context.Context, path string, sum sim.Summary) error {
	one, err := sim.ProbeHTTP(ctx, 1, probeTime)
	if err != nil {
		return err
	}
	many, err := sim.ProbeHTTP(ctx, 16, probeTime)
	if err != nil {
		return err
	}
	sum.HTTP1, sum.HTTPMany = &one, &many
	fmt.Printf("raw loopback HTTP (1 KiB POST): %.0f round trips/s with 16 clients; p50 %.3f ms p99 %.3f ms with one\n", many.PerS, one.P50Ms, one.P99Ms)
	b, err := json.MarshalIndent(sum, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o600)
}
