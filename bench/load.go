package bench

import (
	"context"
	"io"
	"math/rand"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// target is one side of a comparison: a base URL and how to pick the next
// request.
type target struct {
	base string
	// picker returns, for one client goroutine with its own r, the function
	// that picks the next request: the tenant header value ("" for none)
	// and the note ID.
	picker func(r *rand.Rand) func() (tenant, id string)
}

// sample is what one side measured in one round.
type sample struct {
	ok, errors int
	elapsed    time.Duration
	latencies  []time.Duration
}

func (s sample) throughput() float64 { return float64(s.ok) / s.elapsed.Seconds() }

// serve starts h on a loopback listener and returns its base URL and stop.
func serve(ctx context.Context, h http.Handler) (string, func(), error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute}
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}

func newClient(conns int) *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			MaxIdleConns:        conns,
			MaxIdleConnsPerHost: conns,
			DisableCompression:  true,
			IdleConnTimeout:     time.Minute,
		},
	}
}

// pair runs every target with clients goroutines each, all at once, for d,
// and returns one sample per target. Running the sides together makes their
// ratio immune to the machine's changing speed.
func pair(ctx context.Context, client *http.Client, targets []target, clients int, d time.Duration, seed int64) []sample {
	out := make([]sample, len(targets))
	var wg sync.WaitGroup
	var stop atomic.Bool
	start := time.Now()
	for i, tg := range targets {
		var mu sync.Mutex
		for c := range clients {
			wg.Go(func() {
				next := tg.picker(rand.New(rand.NewSource(seed + int64(i*1000+c)))) //nolint:gosec // load generation
				var ok, errs int
				lat := make([]time.Duration, 0, 4096)
				for !stop.Load() && ctx.Err() == nil {
					tn, id := next()
					req, err := http.NewRequestWithContext(ctx, http.MethodGet, tg.base+"/api/v1/notes/"+id, nil)
					if err != nil {
						errs++
						continue
					}
					if tn != "" {
						req.Header.Set("X-Tenant-ID", tn)
					}
					t0 := time.Now()
					resp, err := client.Do(req)
					if err != nil {
						errs++
						continue
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						errs++
						continue
					}
					lat = append(lat, time.Since(t0))
					ok++
				}
				mu.Lock()
				out[i].ok += ok
				out[i].errors += errs
				out[i].latencies = append(out[i].latencies, lat...)
				mu.Unlock()
			})
		}
	}
	select {
	case <-time.After(d):
	case <-ctx.Done():
	}
	stop.Store(true)
	elapsed := time.Since(start)
	wg.Wait()
	for i := range out {
		out[i].elapsed = elapsed
	}
	return out
}

// percentile returns the p-th percentile (0-100) of ds, which it sorts.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	i := int(float64(len(ds)-1) * p / 100)
	return ds[i]
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
