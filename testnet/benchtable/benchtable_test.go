package benchtable

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/run.golden")

// Issue 8: make bench parses `go test -bench` output deterministically.
func TestParse(t *testing.T) {
	const out = `goos: linux
pkg: example.com/a
BenchmarkA/x=1-2   	     300	    410002 ns/op	   2.50 MB/s	      2439 writes/s
BenchmarkLogs-2
    a_test.go:12: a log line 5 with numbers 7
--- BENCH: BenchmarkLogs-2
         1	15185979927 ns/op	       0.3202 paired
pkg: example.com/b
BenchmarkB/raw-libp2p-8 	 10	 8729 ns/op	 114564 msgs/s
BenchmarkBad-2	10	x ns/op
BenchmarkOdd-2	10	12 ns/op	3
PASS
ok  	example.com/b	1.0s
`
	got, err := Parse(strings.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	want := []Result{
		{Pkg: "example.com/a", Name: "BenchmarkA/x=1", N: 300, Metrics: map[string]float64{"ns/op": 410002, "MB/s": 2.5, "writes/s": 2439}},
		{Pkg: "example.com/a", Name: "BenchmarkLogs", N: 1, Metrics: map[string]float64{"ns/op": 15185979927, "paired": 0.3202}},
		{Pkg: "example.com/b", Name: "BenchmarkB/raw-libp2p", N: 10, Metrics: map[string]float64{"ns/op": 8729, "msgs/s": 114564}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Parse = %+v\nwant %+v", got, want)
	}
}

// The recorded output of real runs (testdata/run: the end-to-end
// benchmarks at 300x, a 3-node 50-user testnet).
func TestParseRecorded(t *testing.T) {
	f, err := os.Open(filepath.Join("testdata", "run", FileEndToEnd))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	res, err := Parse(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 9 {
		t.Fatalf("Parse(%s) = %d results, want 9", FileEndToEnd, len(res))
	}
	r := find(res, "BenchmarkEndToEnd1KiB/senders=16/transport=ws")
	if r == nil || r.Pkg != "github.com/parley-chat/parley/node" {
		t.Fatalf("find(senders=16/transport=ws) = %+v", r)
	}
	if v, ok := r.Metric("p99-ms"); !ok || v != 14.51 {
		t.Errorf("p99-ms = %v, %v, want 14.51", v, ok)
	}
}

func TestFailed(t *testing.T) {
	for _, tc := range []struct {
		out  string
		want bool
	}{
		{"PASS\nok  \tx\t1s\n", false},
		{"--- FAIL: BenchmarkX\nFAIL\n", true},
		{"FAIL\tgithub.com/x [build failed]\n", true},
		{"    x_test.go:1: FAILED to frobnicate\nPASS\n", false},
	} {
		if got := Failed(tc.out); got != tc.want {
			t.Errorf("Failed(%q) = %v, want %v", tc.out, got, tc.want)
		}
	}
}

func TestNum(t *testing.T) {
	for _, tc := range []struct {
		v    float64
		want string
	}{
		{0, "0"}, {0.04333, "0.0433"}, {3.915, "3.92"}, {45.83, "45.8"}, {987.4, "987"}, {22727, "22,727"},
		{1234567.8, "1,234,568"}, {-2500, "-2,500"},
	} {
		if got := Num(tc.v); got != tc.want {
			t.Errorf("Num(%v) = %q, want %q", tc.v, got, tc.want)
		}
	}
}

// Issue 8: the table of a recorded run, row per figure with its limit,
// target and ratio, is exactly testdata/run.golden.
func TestTableGolden(t *testing.T) {
	in, err := Load(filepath.Join("testdata", "run"))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := Write(&buf, Rows(in)); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "run.golden")
	if *update {
		if err := os.WriteFile(golden, buf.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Errorf("table =\n%s\nwant (testdata/run.golden; go test -update to rewrite)\n%s", buf.Bytes(), want)
	}
}

// A step that did not run, one whose benchmark does not exist and one
// that failed are told apart, and nothing is compared with a target.
func TestLoadMissing(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(FileBlob, "goos: linux\nPASS\nok  \tgithub.com/parley-chat/parley/node\t0.1s\n")
	write(FileFederated, "BenchmarkFederated1KiB/raw-libp2p-2 \t 300\t 8729 ns/op\t 114564 msgs/s\n--- FAIL: BenchmarkFederated1KiB/senders=1\nFAIL\n")
	write(FileTestnet, "testnet: parleyd init: exit status 1\n")
	in, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	byFigure := map[string]Row{}
	for _, r := range Rows(in) {
		byFigure[r.Figure] = r
		if r.Met() != "" {
			t.Errorf("%s: Met() = %q with nothing measured", r.Figure, r.Met())
		}
	}
	for fig, want := range map[string]string{
		"1 node, ws, 16 senders: throughput":        "not run",
		"blob 256 MiB: upload":                      "not run (no BenchmarkBlob256MiB)",
		"2 nodes, ws, 16 senders: throughput":       "failed",
		"testnet: throughput":                       "failed (see testnet.txt)",
		"lottery, 10 nodes: CPU per node per epoch": "not run",
	} {
		if got := byFigure[fig].Value.String(); got != want {
			t.Errorf("%s = %q, want %q", fig, got, want)
		}
	}
	// The failed step's figures that were printed are still shown.
	if got := byFigure["2 nodes, ws, 1 sender: throughput"].Limit.String(); got != "114,564 msgs/s (raw libp2p stream)" {
		t.Errorf("federated limit = %q, want the raw libp2p figure", got)
	}
}

// Issue 7's figures are found as metrics of the benchmark too (the
// summary sub-benchmark's upload-MB/s, raw-xchacha-MB/s ...).
func TestBlobFromMetrics(t *testing.T) {
	b, err := benchFrom([]byte("BenchmarkBlob256MiB/summary-2 \t 1\t 121.3 download-MB/s\t 26.23 pct-of-limit\t 462.5 raw-libp2p-MB/s\t 941.7 raw-xchacha-MB/s\t 124.3 upload-MB/s\nPASS\n"), benchBlob)
	if err != nil {
		t.Fatal(err)
	}
	rows := blobRows(b)
	for i, want := range []string{"124 MB/s", "121 MB/s"} {
		if got := rows[i].Value.String(); got != want {
			t.Errorf("%s = %q, want %q", rows[i].Figure, got, want)
		}
	}
	if got := rows[0].Limit.String(); got != "462 MB/s (raw libp2p stream)" {
		t.Errorf("limit = %q, want the raw libp2p figure", got)
	}
}
