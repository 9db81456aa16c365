package fair_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tenantry/tenantry/blob"
	"github.com/tenantry/tenantry/blob/blobtest"
	"github.com/tenantry/tenantry/blob/fair"
	"github.com/tenantry/tenantry/blob/local"
	"github.com/tenantry/tenantry/tenant"
)

// envInt reads a benchmark knob from the environment.
func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

type phase struct {
	name    string
	flood   bool
	small   bool
	handler http.Handler
}

type sample struct {
	phase string
	op    string // "put" or "get"
	d     time.Duration
}

// BenchmarkNoisyNeighbour: one tenant floods concurrent 64 MiB uploads while
// five others make small uploads and downloads, through the HTTP handler
// over loopback onto the local store. Five phases run interleaved in rounds,
// so that background load hits them alike: idle (small tenants only), flood
// with fair scheduling off and on, and the flood alone with it off and on
// (to show the scheduler is work-conserving). It prints the small tenants'
// p50/p99 per phase and the flooding tenant's throughput.
//
//	go test -run '^$' -bench NoisyNeighbour -benchtime 1x ./blob/fair/
//
// Knobs (environment): BENCH_ROUNDS (3), BENCH_PHASE_SECONDS (4),
// BENCH_FLOOD (8 concurrent 64 MiB uploads), BENCH_SLOTS (2),
// BENCH_TENANT_SLOTS (1), BENCH_CHUNK_KIB (128), BENCH_SMALL_KIB (64),
// BENCH_SYNC (0: no fsync), BENCH_DIR (/dev/shm when present).
func BenchmarkNoisyNeighbour(b *testing.B) {
	rounds := envInt("BENCH_ROUNDS", 3)
	phaseDur := time.Duration(envInt("BENCH_PHASE_SECONDS", 4)) * time.Second
	floodN := envInt("BENCH_FLOOD", 8)
	slots := envInt("BENCH_SLOTS", 2)
	tenantSlots := envInt("BENCH_TENANT_SLOTS", 1)
	chunk := envInt("BENCH_CHUNK_KIB", 128) << 10
	smallSize := envInt("BENCH_SMALL_KIB", 64) << 10
	const bigSize = 64 << 20

	dir := benchDir(b)
	inner, err := local.New(dir, &local.Config{NoSync: os.Getenv("BENCH_SYNC") != "1"})
	if err != nil {
		b.Fatal(err)
	}
	defer inner.Close()
	off, _ := fair.New(inner, &fair.Config{InFlight: -1})
	sched, err := fair.NewScheduler(&fair.SchedulerConfig{Slots: slots, TenantSlots: tenantSlots})
	if err != nil {
		b.Fatal(err)
	}
	on, _ := fair.New(inner, &fair.Config{Scheduler: sched, InFlight: -1, ChunkSize: chunk})
	hOff, _ := blob.NewHandler(off, nil)
	hOn, _ := blob.NewHandler(on, nil)

	heavy := &tenant.Tenant{ID: blobtest.NewUUID(), Tier: "enterprise", State: tenant.StateActive}
	var small []*tenant.Tenant
	for range 5 {
		small = append(small, &tenant.Tenant{ID: blobtest.NewUUID(), Tier: "free", State: tenant.StateActive})
	}
	byID := map[string]*tenant.Tenant{heavy.ID: heavy}
	for _, t := range small {
		byID[t.ID] = t
	}
	var current atomic.Pointer[http.Handler]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t := byID[r.Header.Get("X-Bench-Tenant")]
		(*current.Load()).ServeHTTP(w, r.WithContext(tenant.NewContext(r.Context(), t, "bench")))
	}))
	defer srv.Close()
	heavyClient := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: floodN}}
	smallClient := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 10}}

	phases := []phase{
		{"idle", false, true, hOn},
		{"flood, fairness off", true, true, hOff},
		{"flood, fairness on", true, true, hOn},
		{"flood alone, fairness off", true, false, hOff},
		{"flood alone, fairness on", true, false, hOn},
	}
	var samples []sample
	heavyBytes := map[string]int64{}
	var mu sync.Mutex
	payload := bytes.Repeat([]byte("tenantry"), smallSize/8)

	for round := range rounds {
		for _, ph := range phases {
			h := ph.handler
			current.Store(&h)
			ctx, cancel := context.WithTimeout(context.Background(), phaseDur)
			var wg sync.WaitGroup
			var moved atomic.Int64
			if ph.flood {
				for i := range floodN {
					wg.Go(func() {
						for ctx.Err() == nil {
							body := &countReader{r: io.LimitReader(zeros{}, bigSize), n: &moved}
							req, _ := http.NewRequestWithContext(ctx, "PUT", srv.URL+"/api/v1/files/flood-"+strconv.Itoa(i), body)
							req.ContentLength = bigSize
							req.Header.Set("X-Bench-Tenant", heavy.ID)
							if resp, err := heavyClient.Do(req); err == nil {
								io.Copy(io.Discard, resp.Body)
								resp.Body.Close()
							}
						}
					})
				}
				time.Sleep(300 * time.Millisecond) // let the flood build up
			}
			for i, t := range small {
				if !ph.small {
					break
				}
				wg.Go(func() {
					key := srv.URL + "/api/v1/files/small-" + strconv.Itoa(i)
					for ctx.Err() == nil {
						for _, op := range []string{"put", "get"} {
							var body io.Reader
							if op == "put" {
								body = bytes.NewReader(payload)
							}
							req, _ := http.NewRequestWithContext(ctx, map[string]string{"put": "PUT", "get": "GET"}[op], key, body)
							req.Header.Set("X-Bench-Tenant", t.ID)
							start := time.Now()
							resp, err := smallClient.Do(req)
							if err != nil {
								continue
							}
							io.Copy(io.Discard, resp.Body)
							resp.Body.Close()
							d := time.Since(start)
							if ctx.Err() == nil && resp.StatusCode < 300 {
								mu.Lock()
								samples = append(samples, sample{ph.name, op, d})
								mu.Unlock()
							}
						}
						time.Sleep(10 * time.Millisecond)
					}
				})
			}
			wg.Wait()
			cancel()
			heavyBytes[ph.name] += moved.Load()
			_ = round
		}
	}

	fmt.Printf("\nstore: local in %s\n", filepath.Dir(dir))
	fmt.Printf("noisy neighbour: 1 enterprise tenant x %d concurrent 64 MiB uploads vs 5 free tenants x (%d KiB PUT + GET, 10 ms apart); %d rounds x %s per phase; scheduler slots %d, per-tenant %d while others are active, chunk %d KiB; GOMAXPROCS %d\n\n",
		floodN, smallSize>>10, rounds, phaseDur, slots, tenantSlots, chunk>>10, runtimeProcs())
	fmt.Printf("| phase | small PUT p50 | small PUT p99 | small GET p50 | small GET p99 | small ops | flood MiB/s |\n")
	fmt.Printf("|---|---|---|---|---|---|---|\n")
	idle := map[string]time.Duration{}
	for _, ph := range phases {
		row := []string{ph.name}
		n := 0
		for _, op := range []string{"put", "get"} {
			var ds []time.Duration
			for _, s := range samples {
				if s.phase == ph.name && s.op == op {
					ds = append(ds, s.d)
				}
			}
			n += len(ds)
			p50, p99 := pct(ds, 50), pct(ds, 99)
			if ph.name == "idle" {
				idle[op] = p99
			}
			row = append(row, fmtDur(p50), fmtDur(p99)+ratio(p99, idle[op], ph.name))
			if ph.small {
				b.ReportMetric(float64(p99.Microseconds())/1000, "ms-p99-"+op+"-"+shortName(ph.name))
			}
		}
		mibs := float64(heavyBytes[ph.name]) / (1 << 20) / (float64(rounds) * phaseDur.Seconds())
		if !ph.small {
			row = []string{ph.name, "", "", "", ""}
		}
		fmt.Printf("| %s | %s | %s | %s | %s | %d | %.0f |\n", row[0], row[1], row[2], row[3], row[4], n, mibs)
	}
	fmt.Println()
}

// benchDir is BENCH_DIR, else a directory on /dev/shm (so that other
// processes' disk flushes on a shared machine do not drown the signal), else
// a temp dir.
func benchDir(b *testing.B) string {
	parent := os.Getenv("BENCH_DIR")
	if parent == "" {
		if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
			parent = "/dev/shm"
		}
	}
	if parent == "" {
		return b.TempDir()
	}
	dir, err := os.MkdirTemp(parent, "tenantry-blob-bench-")
	if err != nil {
		return b.TempDir()
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func shortName(p string) string {
	switch p {
	case "idle":
		return "idle"
	case "flood, fairness off":
		return "off"
	}
	return "on"
}

func ratio(d, idle time.Duration, phase string) string {
	if phase == "idle" || idle == 0 {
		return ""
	}
	return fmt.Sprintf(" (%.1fx)", float64(d)/float64(idle))
}

func pct(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[min(max(i-1, 0), len(s)-1)]
}

func fmtDur(d time.Duration) string {
	return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000)
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

type countReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func runtimeProcs() int { return runtime.GOMAXPROCS(0) }
