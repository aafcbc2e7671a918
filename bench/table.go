package bench

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Row is one line of the result table.
type Row struct {
	Area    string // reads, churn, expiry, refresh, scale, go
	Storage string // dev, raft, or "-" (in process)
	Case    string
	Result  string
	// Verdict holds ratios and targets ("a/b 0.97 (target >= 0.95) ok").
	Verdict string
}

// Table collects rows from the whole run and prints them once.
type Table struct {
	mu   sync.Mutex
	rows []Row
	// Log receives progress lines while the table is being filled.
	Log io.Writer
}

// Add appends a row and echoes it to the progress log.
func (t *Table) Add(r Row) {
	t.mu.Lock()
	t.rows = append(t.rows, r)
	t.mu.Unlock()
	t.Logf("%-7s %-4s %-44s %s  %s", r.Area, r.Storage, r.Case, r.Result, r.Verdict)
}

// Logf prints a progress line (stderr by default).
func (t *Table) Logf(format string, args ...interface{}) {
	w := t.Log
	if w == nil {
		w = os.Stderr
	}
	fmt.Fprintf(w, "bench: "+format+"\n", args...)
}

// Print writes the table as Markdown.
func (t *Table) Print(w io.Writer) {
	t.mu.Lock()
	defer t.mu.Unlock()
	head := Row{"area", "storage", "case", "result", "ratio / target"}
	rows := append([]Row{head}, t.rows...)
	width := [5]int{}
	for _, r := range rows {
		for i, c := range r.cells() {
			if n := len([]rune(c)); n > width[i] {
				width[i] = n
			}
		}
	}
	line := func(cells [5]string) {
		fmt.Fprint(w, "|")
		for i, c := range cells {
			fmt.Fprintf(w, " %s%s |", c, strings.Repeat(" ", width[i]-len([]rune(c))))
		}
		fmt.Fprintln(w)
	}
	line(head.cells())
	var sep [5]string
	for i := range sep {
		sep[i] = strings.Repeat("-", width[i])
	}
	line(sep)
	for _, r := range rows[1:] {
		line(r.cells())
	}
}

func (r Row) cells() [5]string { return [5]string{r.Area, r.Storage, r.Case, r.Result, r.Verdict} }

// ms formats a duration in milliseconds.
func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 2, 64) + " ms"
}

// us formats a duration in microseconds.
func us(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Microsecond), 'f', 0, 64) + " µs"
}

// mib formats bytes as MiB.
func mib(b int64) string {
	return strconv.FormatFloat(float64(b)/(1<<20), 'f', 1, 64) + " MiB"
}

// thousands formats an integer with separators.
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

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

// GoBench is one line of `go test -bench` output.
type GoBench struct {
	Name    string
	N       int
	Metrics map[string]float64 // unit -> value: ns/op, B/op, allocs/op, refreshes/op
}

// ParseGoBench reads `go test -bench -benchmem` output.
func ParseGoBench(r io.Reader) ([]GoBench, error) {
	var out []GoBench
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		n, err := strconv.Atoi(f[1])
		if err != nil {
			continue
		}
		gb := GoBench{Name: strings.TrimPrefix(f[0], "Benchmark"), N: n, Metrics: map[string]float64{}}
		// Drop the -GOMAXPROCS suffix.
		if i := strings.LastIndexByte(gb.Name, '-'); i > 0 {
			if _, err := strconv.Atoi(gb.Name[i+1:]); err == nil {
				gb.Name = gb.Name[:i]
			}
		}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				break
			}
			gb.Metrics[f[i+1]] = v
		}
		out = append(out, gb)
	}
	return out, sc.Err()
}

// Row renders a Go benchmark for the table.
func (g GoBench) Row() Row {
	ns := g.Metrics["ns/op"]
	res := ""
	switch {
	case ns >= 1e6:
		res = fmt.Sprintf("%.2f ms/op", ns/1e6)
	case ns >= 1e3:
		res = fmt.Sprintf("%.2f µs/op", ns/1e3)
	default:
		res = fmt.Sprintf("%.0f ns/op", ns)
	}
	res += fmt.Sprintf(", %.0f B/op, %.0f allocs/op", g.Metrics["B/op"], g.Metrics["allocs/op"])
	if v, ok := g.Metrics["refreshes/op"]; ok {
		res += fmt.Sprintf(", %.1f refreshes/op", v)
	}
	if v, ok := g.Metrics["cpu-ns/op"]; ok {
		res += fmt.Sprintf(", CPU %s/op", us(time.Duration(v)))
	}
	// Any other custom metric, by name.
	var extra []string
	for unit := range g.Metrics {
		switch unit {
		case "ns/op", "B/op", "allocs/op", "refreshes/op", "cpu-ns/op":
			continue
		}
		extra = append(extra, unit)
	}
	sort.Strings(extra)
	for _, unit := range extra {
		res += fmt.Sprintf(", %s %s", strconv.FormatFloat(g.Metrics[unit], 'f', -1, 64), unit)
	}
	return Row{Area: "go", Storage: "-", Case: g.Name, Result: res}
}
