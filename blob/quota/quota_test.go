package quota_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tenantry/tenantry/blob"
	"github.com/tenantry/tenantry/blob/blobtest"
	"github.com/tenantry/tenantry/blob/local"
	"github.com/tenantry/tenantry/blob/quota"
	"github.com/tenantry/tenantry/catalog"
	"github.com/tenantry/tenantry/internal/problem"
	"github.com/tenantry/tenantry/tenant"
	"github.com/tenantry/tenantry/tenantrytest"
)

func TestMain(m *testing.M) { tenantrytest.Main(m) }

type bundle struct {
	pool  *pgxpool.Pool
	q     *quota.Quota
	store *quota.Store
}

// setupDB returns a pool on a fresh database with the catalog migrated
// (including 0003_blob_usage), with an empty search_path so that every query
// must name its schema.
func setupDB(t *testing.T) *pgxpool.Pool {
	t.Helper()
	pool := tenantrytest.Pool(t, tenantrytest.NewDatabase(t), tenantrytest.WithSearchPath())
	cs, err := catalog.NewStore(pool, &catalog.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	return pool
}

func setup(t *testing.T, pool *pgxpool.Pool, cfg *quota.Config) *bundle {
	t.Helper()
	q, err := quota.New(pool, cfg)
	if err != nil {
		t.Fatal(err)
	}
	inner, err := local.New(t.TempDir(), &local.Config{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { inner.Close() })
	return &bundle{pool: pool, q: q, store: quota.Wrap(inner, q)}
}

// newTenant records a tenant in the catalog and returns a context carrying it.
func newTenant(t *testing.T, pool *pgxpool.Pool, tier string) (context.Context, *tenant.Tenant) {
	t.Helper()
	ctx, tn := blobtest.NewTenant(t, tier)
	if _, err := pool.Exec(t.Context(), `INSERT INTO tenantry.tenant (id, slug, tier) VALUES ($1, $2, $3)`, tn.ID, tn.Slug, tier); err != nil {
		t.Fatal(err)
	}
	return ctx, tn
}

// watchReader counts the bytes taken from it.
type watchReader struct {
	r io.Reader
	n atomic.Int64
}

func (w *watchReader) Read(p []byte) (int, error) {
	n, err := w.r.Read(p)
	w.n.Add(int64(n))
	return n, err
}

func i64(v int64) *int64 { return &v }

func usage(t *testing.T, b *bundle, tn *tenant.Tenant) quota.Usage {
	t.Helper()
	u, err := b.q.Usage(t.Context(), tn)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func limitErr(t *testing.T, err error, limit string) *blob.LimitError {
	t.Helper()
	var le *blob.LimitError
	if !errors.As(err, &le) || le.Limit != limit {
		t.Fatalf("error %v, want a LimitError on %s", err, limit)
	}
	return le
}

func TestQuota(t *testing.T) {
	t.Parallel()
	pool := setupDB(t)
	cfg := &quota.Config{
		Default:  quota.Limits{MaxBytes: 1000, MaxObjects: 5},
		Tiers:    map[string]quota.Limits{"pro": {MaxBytes: 10_000, MaxObjects: 50, MaxObjectSize: 4000}},
		GrowStep: 100,
	}

	t.Run("AccountsPutsOverwritesDeletes", func(t *testing.T) {
		t.Parallel()
		b := setup(t, pool, cfg)
		ctx, tn := newTenant(t, pool, "free")
		put := func(key string, n int) {
			t.Helper()
			if _, err := b.store.Put(ctx, key, bytes.NewReader(make([]byte, n)), blob.PutOptions{Size: int64(n)}); err != nil {
				t.Fatal(err)
			}
		}
		put("a", 300)
		put("b", 200)
		if u := usage(t, b, tn); u.Bytes != 500 || u.Objects != 2 || u.ReservedBytes != 0 || u.ReservedObjects != 0 {
			t.Fatalf("usage %+v", u)
		}
		put("a", 100) // overwrite: -200 bytes, no new object
		if u := usage(t, b, tn); u.Bytes != 300 || u.Objects != 2 {
			t.Fatalf("after overwrite: %+v", u)
		}
		if err := b.store.Delete(ctx, "b"); err != nil {
			t.Fatal(err)
		}
		if err := b.store.Delete(ctx, "b"); err != nil { // missing: no change
			t.Fatal(err)
		}
		if u := usage(t, b, tn); u.Bytes != 100 || u.Objects != 1 {
			t.Fatalf("after delete: %+v", u)
		}
	})

	t.Run("KnownSizeRefusedBeforeReading", func(t *testing.T) {
		t.Parallel()
		b := setup(t, pool, cfg)
		ctx, tn := newTenant(t, pool, "free")
		if _, err := b.store.Put(ctx, "fill", bytes.NewReader(make([]byte, 900)), blob.PutOptions{Size: 900}); err != nil {
			t.Fatal(err)
		}
		w := &watchReader{r: bytes.NewReader(make([]byte, 200))}
		_, err := b.store.Put(ctx, "over", w, blob.PutOptions{Size: 200})
		le := limitErr(t, err, blob.LimitBytes)
		if le.Max != 1000 || le.Used != 900 || le.Requested != 200 || le.RequestTooLarge() {
			t.Errorf("LimitError %+v (too large %v)", le, le.RequestTooLarge())
		}
		if !strings.Contains(le.Error(), "900 of 1000 bytes") {
			t.Errorf("message %q does not name the limit", le.Error())
		}
		if w.n.Load() != 0 {
			t.Errorf("%d bytes read before refusing", w.n.Load())
		}
		// Larger than the whole quota: the request alone is too large.
		_, err = b.store.Put(ctx, "huge", &watchReader{r: strings.NewReader("")}, blob.PutOptions{Size: 5000})
		if le := limitErr(t, err, blob.LimitBytes); !le.RequestTooLarge() {
			t.Errorf("5000 bytes against a 1000-byte quota not marked too large")
		}
		if _, err := b.store.Stat(ctx, "over"); !errors.Is(err, blob.ErrNotFound) {
			t.Errorf("refused object exists: %v", err)
		}
		if u := usage(t, b, tn); u.Bytes != 900 || u.Objects != 1 || u.ReservedBytes != 0 {
			t.Errorf("usage %+v", u)
		}
	})

	t.Run("StreamAbortedAtLimit", func(t *testing.T) {
		t.Parallel()
		b := setup(t, pool, cfg)
		ctx, tn := newTenant(t, pool, "free")
		w := &watchReader{r: bytes.NewReader(make([]byte, 1<<20))}
		_, err := b.store.Put(ctx, "stream", w, blob.PutOptions{Size: -1})
		limitErr(t, err, blob.LimitBytes)
		// The local store reads 256 KiB at a time; the stream is cut at the
		// first chunk past the limit, not read to its end.
		if got := w.n.Load(); got > 256<<10 {
			t.Errorf("read %d bytes of a stream past a 1000-byte quota", got)
		}
		if _, err := b.store.Stat(ctx, "stream"); !errors.Is(err, blob.ErrNotFound) {
			t.Errorf("aborted stream stored: %v", err)
		}
		if u := usage(t, b, tn); u.Bytes != 0 || u.ReservedBytes != 0 || u.ReservedObjects != 0 {
			t.Errorf("usage after abort %+v", u)
		}
		// A stream under the limit goes through, counted exactly.
		if _, err := b.store.Put(ctx, "small", strings.NewReader(strings.Repeat("x", 750)), blob.PutOptions{Size: -1}); err != nil {
			t.Fatal(err)
		}
		if u := usage(t, b, tn); u.Bytes != 750 || u.Objects != 1 {
			t.Errorf("usage %+v", u)
		}
	})

	t.Run("ObjectCount", func(t *testing.T) {
		t.Parallel()
		b := setup(t, pool, cfg)
		ctx, _ := newTenant(t, pool, "free")
		for i := range 5 {
			if _, err := b.store.Put(ctx, string(rune('a'+i)), strings.NewReader("x"), blob.PutOptions{Size: 1}); err != nil {
				t.Fatal(err)
			}
		}
		_, err := b.store.Put(ctx, "f", strings.NewReader("x"), blob.PutOptions{Size: 1})
		limitErr(t, err, blob.LimitObjects)
		// Overwriting an existing object needs no new object.
		if _, err := b.store.Put(ctx, "a", strings.NewReader("y"), blob.PutOptions{Size: 1}); err != nil {
			t.Fatalf("overwrite at the object limit: %v", err)
		}
	})

	t.Run("TierAndOverride", func(t *testing.T) {
		t.Parallel()
		b := setup(t, pool, cfg)
		ctx, tn := newTenant(t, pool, "pro")
		_, err := b.store.Put(ctx, "big", bytes.NewReader(make([]byte, 5000)), blob.PutOptions{Size: 5000})
		if le := limitErr(t, err, blob.LimitObjectSize); le.Max != 4000 || !le.RequestTooLarge() {
			t.Errorf("%+v", le)
		}
		if _, err := b.store.Put(ctx, "ok", bytes.NewReader(make([]byte, 3000)), blob.PutOptions{Size: 3000}); err != nil {
			t.Fatal(err)
		}
		if err := b.q.SetLimits(t.Context(), tn.ID, i64(3500), nil, i64(0)); err != nil {
			t.Fatal(err)
		}
		u := usage(t, b, tn)
		if u.Limits != (quota.Limits{MaxBytes: 3500, MaxObjects: 50, MaxObjectSize: 0}) {
			t.Errorf("effective limits %+v", u.Limits)
		}
		_, err = b.store.Put(ctx, "more", bytes.NewReader(make([]byte, 600)), blob.PutOptions{Size: 600})
		limitErr(t, err, blob.LimitBytes)
	})

	t.Run("ConcurrentReservationsHold", func(t *testing.T) {
		t.Parallel()
		b := setup(t, pool, &quota.Config{Default: quota.Limits{MaxBytes: 500}})
		ctx, tn := newTenant(t, pool, "free")
		var ok, refused atomic.Int32
		var wg sync.WaitGroup
		for i := range 12 {
			wg.Go(func() {
				_, err := b.store.Put(ctx, "k"+string(rune('a'+i)), bytes.NewReader(make([]byte, 100)), blob.PutOptions{Size: 100})
				var le *blob.LimitError
				switch {
				case err == nil:
					ok.Add(1)
				case errors.As(err, &le):
					refused.Add(1)
				default:
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if ok.Load() != 5 || refused.Load() != 7 {
			t.Errorf("%d stored, %d refused; want 5 and 7", ok.Load(), refused.Load())
		}
		if u := usage(t, b, tn); u.Bytes != 500 || u.Objects != 5 {
			t.Errorf("usage %+v", u)
		}
	})

	t.Run("ExpiredReservationsDoNotCount", func(t *testing.T) {
		t.Parallel()
		b := setup(t, pool, cfg)
		ctx, tn := newTenant(t, pool, "free")
		// A reservation left by a process that died an hour ago.
		if _, err := pool.Exec(t.Context(), `INSERT INTO tenantry.blob_reservation (tenant_id, bytes, objects, expires_at) VALUES ($1, 1000, 1, now() - interval '1 minute')`, tn.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := b.store.Put(ctx, "k", bytes.NewReader(make([]byte, 800)), blob.PutOptions{Size: 800}); err != nil {
			t.Fatalf("expired reservation still counted: %v", err)
		}
		var n int
		pool.QueryRow(t.Context(), `SELECT count(*) FROM tenantry.blob_reservation WHERE tenant_id = $1`, tn.ID).Scan(&n)
		if n != 0 {
			t.Errorf("%d reservations left", n)
		}
	})

	t.Run("Reconcile", func(t *testing.T) {
		t.Parallel()
		b := setup(t, pool, cfg)
		ctx, tn := newTenant(t, pool, "free")
		b.store.Put(ctx, "x", strings.NewReader("12345"), blob.PutOptions{Size: 5})
		b.store.Put(ctx, "y/z", strings.NewReader("123"), blob.PutOptions{Size: 3})
		if err := b.q.Record(t.Context(), tn.ID, 777, 9); err != nil { // drift
			t.Fatal(err)
		}
		u, err := b.q.Reconcile(ctx, b.store)
		if err != nil {
			t.Fatal(err)
		}
		if u.Bytes != 8 || u.Objects != 2 {
			t.Errorf("reconciled usage %+v", u)
		}
	})

	t.Run("CascadeOnTenantDelete", func(t *testing.T) {
		t.Parallel()
		b := setup(t, pool, cfg)
		ctx, tn := newTenant(t, pool, "free")
		b.store.Put(ctx, "x", strings.NewReader("1"), blob.PutOptions{Size: 1})
		b.q.SetLimits(t.Context(), tn.ID, i64(5), nil, nil)
		if _, err := pool.Exec(t.Context(), `DELETE FROM tenantry.tenant WHERE id = $1`, tn.ID); err != nil {
			t.Fatal(err)
		}
		var n int
		pool.QueryRow(t.Context(), `SELECT (SELECT count(*) FROM tenantry.blob_usage WHERE tenant_id = $1) + (SELECT count(*) FROM tenantry.blob_quota WHERE tenant_id = $1)`, tn.ID).Scan(&n)
		if n != 0 {
			t.Errorf("%d rows outlived the tenant", n)
		}
	})

	t.Run("HTTP", func(t *testing.T) {
		t.Parallel()
		b := setup(t, pool, cfg)
		ctx, tn := newTenant(t, pool, "free")
		h, err := blob.NewHandler(b.store, nil)
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h.ServeHTTP(w, r.WithContext(tenant.NewContext(r.Context(), tn, "test")))
		}))
		defer srv.Close()
		_ = ctx
		put := func(key string, n int) (int, problem.Problem) {
			req, _ := http.NewRequest("PUT", srv.URL+"/api/v1/files/"+key, bytes.NewReader(make([]byte, n)))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var p problem.Problem
			json.NewDecoder(resp.Body).Decode(&p)
			return resp.StatusCode, p
		}
		if code, _ := put("a", 600); code != http.StatusCreated {
			t.Fatalf("PUT within quota: %d", code)
		}
		code, p := put("b", 600)
		if code != http.StatusInsufficientStorage || p.Code != "quota_exceeded" || !strings.Contains(p.Detail, "600 of 1000 bytes") {
			t.Errorf("PUT over the remaining quota: %d %+v", code, p)
		}
		code, p = put("c", 5000)
		if code != http.StatusRequestEntityTooLarge || p.Code != "object_too_large" || !strings.Contains(p.Detail, "1000") {
			t.Errorf("PUT larger than the quota: %d %+v", code, p)
		}
		if u := usage(t, b, tn); u.Bytes != 600 || u.Objects != 1 {
			t.Errorf("usage %+v", u)
		}
	})

	t.Run("Conformance", func(t *testing.T) {
		t.Parallel()
		// The wrapper is transparent within the quota; tenants made by the
		// suite are recorded in the catalog on first use.
		q, _ := quota.New(pool, &quota.Config{})
		blobtest.Run(t, blobtest.Harness{NewStore: func(t *testing.T) blob.Store {
			inner, err := local.New(t.TempDir(), &local.Config{NoSync: true})
			if err != nil {
				t.Fatal(err)
			}
			return &registering{Store: quota.Wrap(inner, q), pool: pool}
		}})
	})
}

// registering inserts the tenant of each call into the catalog first, as
// tenants made by the conformance suite do not exist there.
type registering struct {
	*quota.Store
	pool *pgxpool.Pool
	seen sync.Map
}

func (r *registering) register(ctx context.Context) {
	if tn, ok := tenant.FromContext(ctx); ok && blob.IsCanonicalUUID(tn.ID) {
		// Every caller for a tenant waits for its one insert: concurrent
		// first uses must not race ahead of the row they need.
		once, _ := r.seen.LoadOrStore(tn.ID, new(sync.Once))
		once.(*sync.Once).Do(func() {
			_, _ = r.pool.Exec(context.Background(), `INSERT INTO tenantry.tenant (id, slug) VALUES ($1, $2) ON CONFLICT DO NOTHING`, tn.ID, "s"+strings.ReplaceAll(tn.ID, "-", "")[:20])
		})
	}
}

func (r *registering) Put(ctx context.Context, key string, rd io.Reader, o blob.PutOptions) (blob.Info, error) {
	r.register(ctx)
	return r.Store.Put(ctx, key, rd, o)
}

func (r *registering) Delete(ctx context.Context, key string) error {
	r.register(ctx)
	return r.Store.Delete(ctx, key)
}
