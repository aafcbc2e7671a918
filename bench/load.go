package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// HTTPClient is a keep-alive client straight to Vault's HTTP API, sized for
// the given number of concurrent callers.
func HTTPClient(conns int) *http.Client {
	tr := &http.Transport{
		MaxIdleConns:        conns * 2,
		MaxIdleConnsPerHost: conns * 2,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	return &http.Client{Transport: tr, Timeout: 60 * time.Second}
}

// Reader issues GET /v1/<path> requests with a token, or none (through
// Vault Proxy).
type Reader struct {
	Client *http.Client
	Addr   string
	Token  string
}

// Get reads one path and requires a 200; the body is read and dropped.
func (r *Reader) Get(ctx context.Context, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.Addr+"/v1/"+path, nil)
	if err != nil {
		return err
	}
	if r.Token != "" {
		// Without one, Vault Proxy adds its own (api_proxy use_auto_auth_token).
		req.Header.Set("X-Vault-Token", r.Token)
	}
	resp, err := r.Client.Do(req)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %.300s", path, resp.Status, body)
	}
	return nil
}

// Result is a load run's outcome.
type Result struct {
	Requests  int
	Errors    int
	FirstErr  error
	Elapsed   time.Duration
	Latencies []time.Duration // sorted
}

// Merge adds another run of the same workload (interleaved rounds).
func (r *Result) Merge(o Result) {
	r.Requests += o.Requests
	r.Errors += o.Errors
	if r.FirstErr == nil {
		r.FirstErr = o.FirstErr
	}
	r.Elapsed += o.Elapsed
	r.Latencies = append(r.Latencies, o.Latencies...)
	sort.Slice(r.Latencies, func(i, j int) bool { return r.Latencies[i] < r.Latencies[j] })
}

// Throughput is requests per second over the run's wall time.
func (r Result) Throughput() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Requests) / r.Elapsed.Seconds()
}

// Quantile of the latencies (q in [0,1]).
func (r Result) Quantile(q float64) time.Duration {
	return quantile(r.Latencies, q)
}

func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q * float64(len(sorted)-1))
	return sorted[i]
}

// Run calls op from `workers` goroutines until maxRequests calls were made
// or d has passed, and records each call's latency. op gets the call's
// sequence number (to spread calls over handles).
func Run(ctx context.Context, workers, maxRequests int, d time.Duration, op func(ctx context.Context, seq int) error) Result {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var next atomic.Int64
	var mu sync.Mutex
	res := Result{}
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]time.Duration, 0, 1024)
			var errs int
			var first error
			for {
				seq := int(next.Add(1)) - 1
				if seq >= maxRequests || ctx.Err() != nil {
					break
				}
				t0 := time.Now()
				err := op(ctx, seq)
				el := time.Since(t0)
				if err != nil {
					if ctx.Err() != nil {
						break // cut off by the time bound, not a failure
					}
					errs++
					if first == nil {
						first = err
					}
					continue
				}
				lat = append(lat, el)
			}
			mu.Lock()
			res.Latencies = append(res.Latencies, lat...)
			res.Errors += errs
			if res.FirstErr == nil {
				res.FirstErr = first
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	res.Requests = len(res.Latencies)
	sort.Slice(res.Latencies, func(i, j int) bool { return res.Latencies[i] < res.Latencies[j] })
	return res
}

// Median of durations (unsorted input is fine).
func Median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return quantile(s, 0.5)
}
