package fair

import (
	"context"
	"fmt"
	"io"
	"sync"

	"golang.org/x/time/rate"

	"github.com/tenantry/tenantry/blob"
	"github.com/tenantry/tenantry/tenant"
)

// Config configures a Store.
type Config struct {
	// Scheduler shares upload capacity between tenants. Default nil: no
	// fair scheduling (uploads go straight to the inner store; the per-tenant
	// limits below still apply).
	Scheduler *Scheduler
	// ChunkSize is the unit of scheduled upload work: an upload asks the
	// scheduler for a slot for every ChunkSize bytes, so a large upload
	// never holds a slot for long. Default 256 KiB.
	ChunkSize int
	// InFlight caps the requests (Put, Get until its body is closed, Stat,
	// Delete, List) one tenant has in flight; the next one fails at once
	// with blob.ErrBusy (HTTP 429) rather than queueing. Default 32; -1
	// means no cap.
	InFlight int
	// TierInFlight overrides InFlight per tenant tier.
	TierInFlight map[string]int
	// Rate caps a tenant's bytes per second, uploads and downloads
	// together, by a token bucket. Default 0: no cap. Token buckets leave
	// capacity idle when others are idle, so set them generously and let
	// the scheduler do the sharing.
	Rate float64
	// TierRate overrides Rate per tenant tier (0 = no cap).
	TierRate map[string]float64
	// Burst is the token bucket's depth in bytes. Default max(ChunkSize,
	// 1 MiB).
	Burst int
}

// WithDefaults returns a copy of c with defaults filled in.
func (c *Config) WithDefaults() *Config {
	out := Config{}
	if c != nil {
		out = *c
	}
	if out.ChunkSize == 0 {
		out.ChunkSize = 256 << 10
	}
	if out.InFlight == 0 {
		out.InFlight = 32
	}
	if out.Burst == 0 {
		out.Burst = max(out.ChunkSize, 1<<20)
	}
	return &out
}

func (c *Config) validate() error {
	if c.ChunkSize < 1 || c.Burst < c.ChunkSize || c.InFlight < -1 || c.Rate < 0 {
		return fmt.Errorf("fair: invalid config: need ChunkSize >= 1, Burst >= ChunkSize, InFlight >= -1, Rate >= 0")
	}
	return nil
}

// Store wraps a blob.Store with noisy-neighbour protection: a per-tenant
// in-flight cap, a per-tenant byte-rate token bucket, and fair scheduling of
// upload chunks across tenants. It implements blob.Store, and blob.Presigner
// when the inner store does.
type Store struct {
	inner blob.Store
	cfg   *Config

	mu      sync.Mutex
	tenants map[string]*tenantState
}

type tenantState struct {
	inflight int
	lim      *rate.Limiter // nil: no rate cap
}

// New wraps inner.
func New(inner blob.Store, cfg *Config) (*Store, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Store{inner: inner, cfg: cfg, tenants: map[string]*tenantState{}}, nil
}

func (s *Store) inFlightCap(t *tenant.Tenant) int {
	if n, ok := s.cfg.TierInFlight[t.Tier]; ok {
		return n
	}
	return s.cfg.InFlight
}

func (s *Store) rateOf(t *tenant.Tenant) float64 {
	if r, ok := s.cfg.TierRate[t.Tier]; ok {
		return r
	}
	return s.cfg.Rate
}

// enter counts a request against the tenant's in-flight cap.
func (s *Store) enter(ctx context.Context) (*tenant.Tenant, *tenantState, func(), error) {
	t, _, err := blob.Scope(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.tenants[t.ID]
	if st == nil {
		st = &tenantState{}
		if r := s.rateOf(t); r > 0 {
			st.lim = rate.NewLimiter(rate.Limit(r), s.cfg.Burst)
		}
		s.tenants[t.ID] = st
	}
	if c := s.inFlightCap(t); c >= 0 && st.inflight >= c {
		return nil, nil, nil, blob.ErrBusy
	}
	st.inflight++
	var once sync.Once
	leave := func() {
		once.Do(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			st.inflight--
			// Forget the tenant once it is idle and its bucket is full again.
			if st.inflight == 0 && (st.lim == nil || st.lim.Tokens() >= float64(s.cfg.Burst)) {
				delete(s.tenants, t.ID)
			}
		})
	}
	return t, st, leave, nil
}

// Put implements blob.Store.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, opts blob.PutOptions) (blob.Info, error) {
	t, st, leave, err := s.enter(ctx)
	if err != nil {
		return blob.Info{}, err
	}
	defer leave()
	sr := &scheduledReader{ctx: ctx, r: r, t: t, sched: s.cfg.Scheduler, lim: st.lim, chunk: s.cfg.ChunkSize}
	defer sr.release()
	return s.inner.Put(ctx, key, sr, opts)
}

// Get implements blob.Store. The request counts as in flight until Body is
// closed, and the body's bytes go through the tenant's token bucket.
func (s *Store) Get(ctx context.Context, key string) (*blob.Object, error) {
	_, st, leave, err := s.enter(ctx)
	if err != nil {
		return nil, err
	}
	obj, err := s.inner.Get(ctx, key)
	if err != nil {
		leave()
		return nil, err
	}
	obj.Body = &limitedBody{ReadCloser: obj.Body, ctx: ctx, lim: st.lim, leave: leave, chunk: s.cfg.ChunkSize}
	return obj, nil
}

// Stat implements blob.Store.
func (s *Store) Stat(ctx context.Context, key string) (blob.Info, error) {
	_, _, leave, err := s.enter(ctx)
	if err != nil {
		return blob.Info{}, err
	}
	defer leave()
	return s.inner.Stat(ctx, key)
}

// Delete implements blob.Store.
func (s *Store) Delete(ctx context.Context, key string) error {
	_, _, leave, err := s.enter(ctx)
	if err != nil {
		return err
	}
	defer leave()
	return s.inner.Delete(ctx, key)
}

// List implements blob.Store.
func (s *Store) List(ctx context.Context, opts blob.ListOptions) (*blob.ListPage, error) {
	_, _, leave, err := s.enter(ctx)
	if err != nil {
		return nil, err
	}
	defer leave()
	return s.inner.List(ctx, opts)
}

// Presign implements blob.Presigner when the inner store does.
func (s *Store) Presign(ctx context.Context, key string, opts blob.PresignOptions) (*blob.PresignedRequest, error) {
	p, ok := s.inner.(blob.Presigner)
	if !ok {
		return nil, blob.ErrNotSupported
	}
	return p.Presign(ctx, key, opts)
}

// scheduledReader reads the upload body in chunks. It reads a chunk from the
// client without holding anything, then waits for the tenant's token bucket
// and for a scheduler slot, and holds the slot while the inner store
// consumes the chunk (until its next Read). At the end of the body it takes
// a slot once more and holds it until the inner Put returns, so that the
// store's final work (an fsync, a multipart completion) is scheduled too.
type scheduledReader struct {
	ctx   context.Context
	r     io.Reader
	t     *tenant.Tenant
	sched *Scheduler
	lim   *rate.Limiter
	chunk int
	held  func()
	// finishing: EOF was seen and a slot taken for the store's final work;
	// keep: hold that slot across further Reads until Put returns.
	finishing, keep bool
}

// releaseChunk gives back the slot of the previous chunk (not the final one).
func (r *scheduledReader) releaseChunk() {
	if !r.keep {
		r.release()
	}
}

func (r *scheduledReader) release() {
	if r.held != nil {
		r.held()
		r.held = nil
	}
}

func (r *scheduledReader) Read(p []byte) (int, error) {
	r.releaseChunk()
	if r.finishing {
		return 0, io.EOF
	}
	if len(p) > r.chunk {
		p = p[:r.chunk]
	}
	n, err := r.r.Read(p)
	if n == 0 && err == io.EOF && r.sched != nil && !r.finishing {
		r.finishing = true
		rel, serr := r.sched.Acquire(r.ctx, r.t, int64(r.chunk))
		if serr != nil {
			return 0, serr
		}
		r.held = rel
		r.keep = true
		return 0, io.EOF
	}
	if n > 0 {
		if r.lim != nil {
			if werr := r.lim.WaitN(r.ctx, n); werr != nil {
				return 0, werr
			}
		}
		if r.sched != nil {
			rel, serr := r.sched.Acquire(r.ctx, r.t, int64(n))
			if serr != nil {
				return 0, serr
			}
			r.held = rel
		}
	}
	return n, err
}

type limitedBody struct {
	io.ReadCloser
	ctx   context.Context
	lim   *rate.Limiter
	leave func()
	chunk int
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.lim == nil {
		return b.ReadCloser.Read(p)
	}
	if len(p) > b.chunk {
		p = p[:b.chunk]
	}
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		if werr := b.lim.WaitN(b.ctx, n); werr != nil {
			return n, werr
		}
	}
	return n, err
}

func (b *limitedBody) Close() error {
	err := b.ReadCloser.Close()
	b.leave()
	return err
}
