package bench

import (
	"context"
	"fmt"
	"time"
)

// scaleWriters write bindings concurrently (integrated storage batches
// concurrent writes into one fsync).
const scaleWriters = 32

// Scale writes api_token bindings up to each of ScaleSizes (cumulative) and
// measures the write rate, the time to list them, the plugin's resident
// memory and a cached read's latency at that size. Then, at the largest
// size, it reads 1% and 10% of the handles and measures memory again:
// memory must follow what is used, not what exists.
func (e *Env) Scale(ctx context.Context) error {
	handle := func(i int) string { return fmt.Sprintf("s%06d", i) }
	pid := e.pluginPID()
	rss0, _ := e.settledRSS(ctx, pid)
	e.Table.Add(Row{Area: "scale", Storage: e.V.Storage, Case: "plugin RSS before scale bindings",
		Result: fmt.Sprintf("%s (after the read, refresh and expiry workloads; VmRSS after a %s pause here and below)", mib(rss0), e.rssPause())})

	// The handles whose cached reads are timed at every size.
	const hot = 100
	written := 0
	for _, size := range e.Cfg.ScaleSizes {
		el, err := e.writeMany(ctx, scaleWriters, written, size, func(i int) (string, map[string]interface{}) {
			return "flowcred/bindings/" + handle(i), map[string]interface{}{
				"kind": "api_token", "token": fmt.Sprintf("bench-scale-token-%d-SECRET", i),
			}
		})
		if err != nil {
			return err
		}
		rate := float64(size-written) / el.Seconds()
		if written == 0 {
			paths := make([]string, hot)
			for i := range paths {
				paths[i] = "flowcred/token/" + handle(i)
			}
			if err := e.readAll(ctx, 8, paths); err != nil {
				return err
			}
		}
		written = size

		// LIST bindings/: median of three.
		var lists []time.Duration
		var keys int
		for i := 0; i < 3; i++ {
			t0 := time.Now()
			s, err := e.V.Client.Logical().ListWithContext(ctx, "flowcred/bindings")
			if err != nil {
				return err
			}
			lists = append(lists, time.Since(t0))
			if s != nil {
				k, _ := s.Data["keys"].([]interface{})
				keys = len(k)
			}
		}
		r := Run(ctx, 1, e.Cfg.ScaleReads, time.Minute, func(ctx context.Context, seq int) error {
			return e.Reader.Get(ctx, "flowcred/token/"+handle(seq%hot))
		})
		if r.Errors > 0 {
			return r.FirstErr
		}
		// After the reads: their allocations let the plugin's GC collect
		// the garbage of the write burst (an idle Go process collects only
		// every two minutes).
		rss, err := e.settledRSS(ctx, pid)
		if err != nil {
			return err
		}
		e.Table.Add(Row{
			Area: "scale", Storage: e.V.Storage,
			Case: fmt.Sprintf("%s bindings (%d read)", thousands(int64(size)), hot),
			Result: fmt.Sprintf("write %s/s (%d writers); list %s (%s keys); plugin RSS %s; cached read p50 %s, p99 %s",
				thousands(int64(rate)), scaleWriters, ms(Median(lists)), thousands(int64(keys)), mib(rss), ms(r.Quantile(0.5)), ms(r.Quantile(0.99))),
		})
	}

	// Memory follows use: read more distinct handles at the largest size.
	largest := e.Cfg.ScaleSizes[len(e.Cfg.ScaleSizes)-1]
	read := hot
	for _, pct := range []int{1, 10} {
		upto := largest * pct / 100
		if upto <= read {
			continue
		}
		paths := make([]string, 0, upto-read)
		for i := read; i < upto; i++ {
			paths = append(paths, "flowcred/token/"+handle(i))
		}
		if err := e.readAll(ctx, 8, paths); err != nil {
			return err
		}
		read = upto
		rss, err := e.settledRSS(ctx, pid)
		if err != nil {
			return err
		}
		e.Table.Add(Row{
			Area: "scale", Storage: e.V.Storage,
			Case:   fmt.Sprintf("%s bindings, %s read (%d%%)", thousands(int64(largest)), thousands(int64(upto)), pct),
			Result: "plugin RSS " + mib(rss),
		})
	}
	return nil
}

// settledRSS reads the plugin's VmRSS after a quiet pause: right after a
// burst of requests, the Go runtime still holds the garbage of the burst,
// which it returns to the OS within seconds. The least of a few samples is
// what the plugin keeps.
func (e *Env) settledRSS(ctx context.Context, pid int) (int64, error) {
	pause := e.rssPause()
	var least int64
	for i := 0; i < 3; i++ {
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(pause / 3):
		}
		rss, err := RSS(pid)
		if err != nil {
			return 0, err
		}
		if least == 0 || rss < least {
			least = rss
		}
	}
	return least, nil
}

func (e *Env) rssPause() time.Duration {
	if e.Cfg.Smoke {
		return time.Second
	}
	return 6 * time.Second
}
