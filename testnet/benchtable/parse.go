// Package benchtable turns the output of Parley's end-to-end benchmarks
// (`go test -bench` text) and of a testnet run (its -summary-json file)
// into the one table `make bench` prints: a row per figure, with the
// limit measured in the same run, the target the issue set, and their
// ratio. testnet/bench runs the benchmarks and prints the table.
package benchtable

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
)

// Result is one benchmark's line of `go test -bench` output.
type Result struct {
	// Pkg is the package, from the "pkg:" line above the benchmark.
	Pkg string
	// Name is the benchmark's full name without the GOMAXPROCS suffix:
	// BenchmarkEndToEnd1KiB/senders=16/transport=ws.
	Name string
	// N is the number of iterations.
	N int64
	// Metrics maps each unit to its value: "ns/op", "MB/s", and whatever
	// the benchmark reported with b.ReportMetric ("msgs/s", "p99-ms").
	Metrics map[string]float64
}

// Metric returns the value of unit and whether the result has it.
func (r Result) Metric(unit string) (float64, bool) {
	v, ok := r.Metrics[unit]
	return v, ok
}

// procsSuffix is the -GOMAXPROCS suffix `go test` appends to a name.
var procsSuffix = regexp.MustCompile(`-\d+$`)

// maxLine bounds a line of benchmark output.
const maxLine = 1 << 20

// Parse reads `go test -bench` output (several packages' outputs may
// follow one another) and returns its benchmark results in order. Lines
// that are not results (logs, PASS, ok, FAIL) are skipped. A result line
// is the name, the iteration count and value-unit pairs; `go test` prints
// the name alone first when the benchmark logged something while it ran,
// and the numbers on a later line, which Parse joins to it.
func Parse(r io.Reader) ([]Result, error) {
	var out []Result
	pkg, pending := "", ""
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	for sc.Scan() {
		line := sc.Text()
		if p, ok := strings.CutPrefix(line, "pkg: "); ok {
			pkg, pending = strings.TrimSpace(p), ""
			continue
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		name := ""
		switch {
		case strings.HasPrefix(f[0], "Benchmark") && !strings.HasPrefix(line, " ") && !strings.HasPrefix(line, "\t"):
			name, f = f[0], f[1:]
			if len(f) == 0 {
				pending = name // the numbers follow on a later line
				continue
			}
		case pending != "" && isCount(f[0]):
			name = pending
		default:
			continue
		}
		pending = ""
		res, ok := parseFields(f)
		if !ok {
			continue
		}
		res.Pkg, res.Name = pkg, procsSuffix.ReplaceAllString(name, "")
		out = append(out, res)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("benchtable: reading benchmark output: %w", err)
	}
	return out, nil
}

func isCount(s string) bool {
	_, err := strconv.ParseInt(s, 10, 64)
	return err == nil
}

// parseFields parses "N v1 unit1 v2 unit2 ...". ok is false when the
// fields are not a result (a name followed by other text, a log line).
func parseFields(f []string) (res Result, ok bool) {
	if len(f) < 3 || len(f)%2 != 1 || !isCount(f[0]) {
		return Result{}, false
	}
	n, _ := strconv.ParseInt(f[0], 10, 64)
	res = Result{N: n, Metrics: make(map[string]float64, len(f)/2)}
	for i := 1; i < len(f); i += 2 {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return Result{}, false
		}
		res.Metrics[f[i+1]] = v
	}
	return res, true
}

// Failed reports whether `go test` output says a test or benchmark
// failed, or a package did not build: a "--- FAIL" line, or a line that
// is or begins with "FAIL".
func Failed(out string) bool {
	for line := range strings.Lines(out) {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "--- FAIL") || line == "FAIL" || strings.HasPrefix(line, "FAIL\t") || strings.HasPrefix(line, "FAIL ") {
			return true
		}
	}
	return false
}
