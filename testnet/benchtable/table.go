package benchtable

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"
)

// Cell is a figure in the table: a value in a unit, or why there is none.
type Cell struct {
	Value float64
	Unit  string
	// OK is set when Value holds a measured figure.
	OK bool
	// Note names the figure (for a limit: which one, "raw store, 16
	// writers") or, without a value, says why ("not run", "failed").
	Note string
}

// val is a measured cell.
func val(v float64, unit, note string) Cell { return Cell{Value: v, Unit: unit, OK: true, Note: note} }

// missing is a cell without a value.
func missing(why string) Cell { return Cell{Note: why} }

func (c Cell) String() string {
	if !c.OK {
		if c.Note == "" {
			return "-"
		}
		return c.Note
	}
	s := Num(c.Value)
	if c.Unit != "" {
		s += " " + c.Unit
	}
	if c.Note != "" {
		s += " (" + c.Note + ")"
	}
	return s
}

// Target is what an issue asked of a figure.
type Target struct {
	// Op is ">=" (at least) or "<" (under), or "" for no target.
	Op    string
	Value float64
	Unit  string
	// OfLimit makes Value a fraction of the limit measured in the same run
	// (issue 7: at least 40% of the slower raw figure).
	OfLimit bool
	// Issue is the issue that set it.
	Issue int
}

func (t Target) String() string {
	if t.Op == "" {
		return "-"
	}
	var s string
	if t.OfLimit {
		s = fmt.Sprintf("%s %s%% of limit", t.Op, exact(100*t.Value))
	} else {
		s = t.Op + " " + exact(t.Value)
		if t.Unit != "" {
			s += " " + t.Unit
		}
	}
	return fmt.Sprintf("%s (#%d)", s, t.Issue)
}

// Row is one figure with its limit and target.
type Row struct {
	Figure string
	Value  Cell
	Limit  Cell
	Target Target
}

// Ratio is Value over Limit, when both are measured and Limit is not 0.
func (r Row) Ratio() (float64, bool) {
	if !r.Value.OK || !r.Limit.OK || r.Limit.Value == 0 {
		return 0, false
	}
	return r.Value.Value / r.Limit.Value, true
}

// Met says whether the row meets its target: "yes", "NO", or "" when
// there is no target or nothing to compare.
func (r Row) Met() string {
	t := r.Target
	if t.Op == "" || !r.Value.OK {
		return ""
	}
	want := t.Value
	if t.OfLimit {
		if !r.Limit.OK {
			return ""
		}
		want *= r.Limit.Value
	}
	var ok bool
	switch t.Op {
	case ">=":
		ok = r.Value.Value >= want
	case "<":
		ok = r.Value.Value < want
	default:
		return ""
	}
	if ok {
		return "yes"
	}
	return "NO"
}

// Num formats v with about three significant digits, and thousands
// separators from 1,000 up: 22,727; 987; 45.8; 3.92; 0.0433.
func Num(v float64) string {
	a := math.Abs(v)
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return strconv.FormatFloat(v, 'f', -1, 64)
	case a >= 1000:
		return thousands(int64(math.Round(v)))
	case a >= 100 || a == 0:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case a >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	default:
		return strconv.FormatFloat(v, 'g', 3, 64)
	}
}

// exact formats a target as written: 20, 0.99, 10,000.
func exact(v float64) string {
	if math.Abs(v) >= 1000 && v == math.Trunc(v) {
		return thousands(int64(v))
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// Write prints rows as one aligned table: figure, value, the limit
// measured in the same run, the issue's target, value/limit, and whether
// the target is met.
func Write(w io.Writer, rows []Row) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "figure\tvalue\tlimit (same run)\ttarget (issue)\tvalue/limit\tmet")
	fmt.Fprintln(tw, "------\t-----\t----------------\t--------------\t-----------\t---")
	for _, r := range rows {
		ratio := "-"
		if q, ok := r.Ratio(); ok {
			ratio = Num(q)
		}
		met := r.Met()
		if met == "" {
			met = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Figure, r.Value, r.Limit, r.Target, ratio, met)
	}
	return tw.Flush()
}
