// Command bench is `make bench`: it runs Parley's end-to-end benchmarks
// (issues 3, 4, 5 and 7) and a testnet at scale (issue 8, 10 nodes and
// 1,000 users by default), then prints one table: each figure, the limit
// measured in the same run, the target and their ratio.
//
// Each step's output is kept in the output directory (-out, or a new
// temporary directory, printed at the end), so benchstat can compare two
// runs' files, and `-from DIR` prints the table of a past run again
// without running anything. A benchmark that does not exist (yet) is
// shown as "not run"; a step that fails is shown as "failed", the other
// steps still run, and the command exits 1.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/parley-chat/parley/testnet/benchtable"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// step is one command whose output goes to a file in the output directory.
type step struct {
	title string
	file  string
	args  []string // run in the module's root
}

func run(args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("bench", flag.ContinueOnError)
	fl.SetOutput(stderr)
	nodes := fl.Int("nodes", 10, "testnet nodes")
	users := fl.Int("users", 1000, "testnet users")
	duration := fl.Duration("duration", 30*time.Second, "testnet load period (the drain follows)")
	seed := fl.Int64("seed", 1, "testnet seed")
	e2eTime := fl.String("e2e-benchtime", "5000x", "-benchtime of BenchmarkEndToEnd1KiB (issue 3)")
	fedTime := fl.String("fed-benchtime", "3000x", "-benchtime of BenchmarkFederated1KiB (issue 4)")
	blobTime := fl.String("blob-benchtime", "1x", "-benchtime of BenchmarkBlob256MiB (issue 7)")
	out := fl.String("out", "", "directory for each step's output (default: a new temporary directory, kept)")
	from := fl.String("from", "", "print the table of the outputs in this directory; run nothing")
	goBin := fl.String("go", "go", "the go command")
	if err := fl.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if *from != "" {
		_, err := table(*from, stdout)
		return err
	}
	dir := *out
	if dir == "" {
		d, err := os.MkdirTemp("", "parley-bench-")
		if err != nil {
			return err
		}
		dir = d
	} else if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	gotest := func(pattern, benchtime, pkg string) []string {
		return []string{*goBin, "test", "-run", "^$", "-bench", pattern, "-benchtime", benchtime, "-timeout", "30m", pkg}
	}
	testnetBin := filepath.Join(dir, "testnet-bin")
	steps := []step{
		{"issue 3: one node end to end", benchtable.FileEndToEnd, gotest("^BenchmarkEndToEnd1KiB$", *e2eTime, "./node")},
		{"issue 4: two federated nodes", benchtable.FileFederated, gotest("^BenchmarkFederated1KiB$", *fedTime, "./node")},
		{"issue 5: the lottery on 10 nodes", benchtable.FileLottery, gotest("^BenchmarkNetworkEpoch$", "1x", "./node/lotterynet")},
		{"issue 7: a 256 MiB blob", benchtable.FileBlob, gotest("^BenchmarkBlob256MiB$", *blobTime, "./node")},
		{"issue 8: build the testnet", "testnet-build.txt", []string{*goBin, "build", "-o", testnetBin, "./testnet"}},
		{fmt.Sprintf("issue 8: the testnet, %d nodes, %d users, %v", *nodes, *users, *duration), benchtable.FileTestnet,
			[]string{testnetBin, "-nodes", fmt.Sprint(*nodes), "-users", fmt.Sprint(*users), "-duration", duration.String(),
				"-seed", fmt.Sprint(*seed), "-scenario", "steady", "-prometheus", "none",
				"-summary-json", filepath.Join(dir, benchtable.FileTestnetJSON)}},
	}
	var failed []string
	for i, s := range steps {
		if ctx.Err() != nil {
			break
		}
		fmt.Fprintf(stderr, "==> [%d/%d] %s: %s\n", i+1, len(steps), s.title, strings.Join(s.args, " "))
		if err := s.run(ctx, dir, stderr); err != nil {
			fmt.Fprintf(stderr, "==> %s: %v (output in %s)\n", s.title, err, filepath.Join(dir, s.file))
			failed = append(failed, s.title)
			if strings.HasSuffix(s.title, "build the testnet") {
				break
			}
		}
	}
	fmt.Fprintln(stdout)
	if _, err := table(dir, stdout); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\neach step's output is in %s (compare two runs' files with make benchstat)\n", dir)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if len(failed) > 0 {
		return fmt.Errorf("failed: %s", strings.Join(failed, "; "))
	}
	return nil
}

// run runs the step, its output to its file and to progress.
func (s step) run(ctx context.Context, dir string, progress io.Writer) error {
	f, err := os.Create(filepath.Join(dir, s.file))
	if err != nil {
		return err
	}
	w := io.MultiWriter(f, progress)
	cmd := exec.CommandContext(ctx, s.args[0], s.args[1:]...) //nolint:gosec // G204: our own commands
	cmd.Stdout, cmd.Stderr = w, w
	// Interrupted, the step stops as after Ctrl-C (the testnet stops its
	// nodes); killed if it has not within a minute.
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = time.Minute
	err = cmd.Run()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// table prints the table of the outputs in dir.
func table(dir string, w io.Writer) ([]benchtable.Row, error) {
	in, err := benchtable.Load(dir)
	if err != nil {
		return nil, err
	}
	rows := benchtable.Rows(in)
	return rows, benchtable.Write(w, rows)
}
