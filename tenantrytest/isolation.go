package tenantrytest

import (
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tenantry/tenantry/internal/sqlident"
	"github.com/tenantry/tenantry/pool"
	"github.com/tenantry/tenantry/provision"
	"github.com/tenantry/tenantry/resolve"
	"github.com/tenantry/tenantry/router"
	"github.com/tenantry/tenantry/tenant"
)

// IsolationConfig configures RunIsolation. The zero value runs the suite on
// a built-in probe table; set DDL, Table and MarkerColumn to run it on
// tables of your own.
type IsolationConfig struct {
	// DDL is the application schema, following the table contract (see
	// package provision). Default: one probe table.
	DDL []string
	// Table is the (unqualified) table the traffic reads and writes; its
	// columns other than tenant_id and MarkerColumn must have defaults.
	// Default "isolation_probe".
	Table string
	// MarkerColumn is a text column of Table; every row written holds a
	// marker naming its tenant there. Default "marker".
	MarkerColumn string

	// Handler, when set, builds the application's HTTP handler over a
	// router; the suite serves it behind the resolution middleware
	// (PathPrefix "/t/", Subdomain "tenants.test", Header "X-Tenant-ID" from
	// 192.0.2.0/24, Host, JWT with an HS256 key of its own) to check that hostile tenant identifiers are
	// refused before any SQL. Default: that part is skipped.
	Handler func(*router.Router) http.Handler
	// Probe is a GET path of Handler that answers 2xx for a valid tenant and
	// runs SQL (a positive control). Required with Handler.
	Probe string

	// PerModel is the number of tenants of each of the four models
	// (sharded ones spread over two shards). Default 13: 52 tenants.
	PerModel int
	// Workers is the number of goroutines sending traffic. Default 16.
	Workers int
	// Ops is the number of operations the workers run in all. Default 4000.
	Ops int
	// MaxConns is each cluster's connection budget, shared by all pools on
	// it. Default 12, so that pools of many tenants share few connections.
	MaxConns int
	// Seed seeds the traffic's randomness; 0 picks one (logged).
	Seed uint64
}

func (c *IsolationConfig) withDefaults() *IsolationConfig {
	out := IsolationConfig{}
	if c != nil {
		out = *c
	}
	if out.DDL == nil {
		out.DDL = []string{probeDDL}
		out.Table, out.MarkerColumn = "isolation_probe", "marker"
	}
	if out.PerModel == 0 {
		out.PerModel = 13
	}
	if out.Workers == 0 {
		out.Workers = 16
	}
	if out.Ops == 0 {
		out.Ops = 4000
	}
	if out.MaxConns == 0 {
		out.MaxConns = 12
	}
	if out.Seed == 0 {
		out.Seed = rand.Uint64() //nolint:gosec // test traffic, not secrets
	}
	return &out
}

const probeDDL = `CREATE TABLE isolation_probe (
    tenant_id uuid NOT NULL DEFAULT NULLIF(current_setting('tenantry.tenant_id', true), '')::uuid,
    id        uuid NOT NULL DEFAULT gen_random_uuid(),
    marker    text NOT NULL,
    PRIMARY KEY (tenant_id, id)
)`

// RunIsolation is the isolation conformance suite: it builds a data plane
// (NewDataPlane: a primary and two shard servers), provisions tenants of
// every model and checks that no tenant ever sees or changes another's rows.
// Zero leaks is the only pass.
//
// It runs, as subtests:
//
//   - Traffic: concurrent randomised reads, writes, updates and deletes over
//     all tenants on shared pools under a small connection budget, so
//     connections serve one tenant after another; every row carries a
//     marker naming its tenant and is checked against its owner (marker and
//     tenant_id) on every read; writes aimed at another tenant's rows must
//     touch nothing; transactions that panic or whose context is cancelled
//     mid-way must leave nothing; pools are evicted while in use; and in
//     the end each tenant holds exactly the rows it committed.
//   - NoTenant: no tenant fails closed: the router refuses before any SQL,
//     and a raw connection as the runtime role sees zero rows and cannot
//     write in the shared and shard databases, and cannot read tenant
//     schemas or databases at all.
//   - Escapes: what a transaction of tenant A can try against tenant B, and
//     what stops it (see the threat model below).
//   - EvictInUse: a pool evicted during a transaction finishes it.
//   - HostileIdentifiers (with Handler): SQL fragments, quotes, ';', NUL,
//     traversal and Unicode look-alikes in every resolution source (path,
//     subdomain, header, host, the claim of a verified JWT), forged tokens
//     and headers from untrusted peers are answered 4xx, with no SQL sent.
//
// # Threat model
//
// Application code is trusted not to forge its own scope: the router sets
// it, and code that runs SET ROLE or set_config('tenantry.tenant_id', ...)
// itself can reach other tenants (the runtime role is a member of every
// per-tenant role, and row-level security trusts the setting). The suite
// logs these as known limits rather than failing on them. What it does
// require: an unscoped connection sees nothing; a tenant's role cannot read
// another tenant's schema by qualified name, nor another's tables from
// inside its own database; the runtime role cannot become the owner or
// reporting role, disable row-level security, or TRUNCATE (which ignores
// it); and hostile identifiers never reach SQL.
func RunIsolation(t *testing.T, cfg *IsolationConfig) {
	t.Helper()
	c := cfg.withDefaults()
	if c.Handler != nil && c.Probe == "" {
		t.Fatal("tenantrytest: IsolationConfig.Handler needs Probe")
	}
	if err := sqlident.Validate(c.Table); err != nil {
		t.Fatalf("tenantrytest: IsolationConfig.Table: %v", err)
	}
	if err := sqlident.Validate(c.MarkerColumn); err != nil {
		t.Fatalf("tenantrytest: IsolationConfig.MarkerColumn: %v", err)
	}
	t.Logf("isolation suite: seed %d, %d tenants per model, %d workers, %d operations", c.Seed, c.PerModel, c.Workers, c.Ops)
	dp := NewDataPlane(t, &DataPlaneConfig{DDL: c.DDL, Shards: 2, MaxConns: c.MaxConns, Pool: func(pc *pool.Config) {
		// Share pools: at most a few connections per database.
		pc.MaxConnsPerPool = func(pool.Key, int) int { return 4 }
	}})
	s := &isolation{cfg: c, dp: dp, table: sqlident.MustQuote(c.Table), marker: sqlident.MustQuote(c.MarkerColumn)}
	s.provision(t)

	t.Run("NoTenant", s.noTenant)
	t.Run("Escapes", s.escapes)
	t.Run("EvictInUse", s.evictInUse)
	if c.Handler != nil {
		t.Run("HostileIdentifiers", s.hostile)
	}
	t.Run("Traffic", s.traffic)
}

type isolation struct {
	cfg           *IsolationConfig
	dp            *DataPlane
	table, marker string // quoted
	tenants       []*owner
	byModel       map[tenant.Model][]*owner
}

// owner is a tenant of the suite and what it has committed.
type owner struct {
	t         *tenant.Tenant
	mu        sync.Mutex
	committed []string
	seq       atomic.Int64
}

func (o *owner) newMarker(kind string) string {
	return fmt.Sprintf("%s#%s%d", o.t.Slug, kind, o.seq.Add(1))
}

func (o *owner) snapshot() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.committed...)
}

func (s *isolation) provision(t *testing.T) {
	t.Helper()
	s.byModel = map[tenant.Model][]*owner{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for _, m := range tenant.Models {
		for i := range s.cfg.PerModel {
			cluster := ""
			if m == tenant.ModelSharded {
				cluster = s.dp.Shards[i%len(s.dp.Shards)]
			}
			wg.Go(func() {
				sem <- struct{}{}
				defer func() { <-sem }()
				o := &owner{t: s.dp.Tenant("iso", m, cluster)}
				mu.Lock()
				s.tenants = append(s.tenants, o)
				s.byModel[m] = append(s.byModel[m], o)
				mu.Unlock()
			})
		}
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
}

func ctxOf(ctx context.Context, o *owner) context.Context {
	return tenant.NewContext(ctx, o.t, "isolation")
}

// leak fails the test with a leak.
func leak(t *testing.T, format string, args ...any) {
	t.Helper()
	t.Errorf("LEAK: "+format, args...)
}

// readAll reads every row the tenant's transaction can see and checks each
// against the owner. It returns the markers.
func (s *isolation) readAll(ctx context.Context, t *testing.T, o *owner) ([]string, error) {
	var markers []string
	err := s.dp.Router.ReadTx(ctxOf(ctx, o), func(ctx context.Context, tx router.Tx) error {
		rows, err := tx.Query(ctx, `SELECT `+s.marker+`, tenant_id::text FROM `+s.table)
		if err != nil {
			return err
		}
		markers = markers[:0]
		for rows.Next() {
			var m, id string
			if err := rows.Scan(&m, &id); err != nil {
				return err
			}
			if id != o.t.ID || !strings.HasPrefix(m, o.t.Slug+"#") {
				leak(t, "tenant %s (%s) read row %q of tenant_id %s", o.t.Slug, o.t.Placement.Model, m, id)
			}
			markers = append(markers, m)
		}
		return rows.Err()
	})
	return markers, err
}

func (s *isolation) traffic(t *testing.T) {
	ctx := t.Context()
	var (
		ops      atomic.Int64
		failures atomic.Int64
		backends sync.Map // "cluster/db/pid" -> *sync.Map of tenant IDs
		done     = make(chan struct{})
		evicted  atomic.Int64
	)
	// Evict pools in use, all through the run.
	var evictor sync.WaitGroup
	evictor.Go(func() {
		r := rand.New(rand.NewPCG(s.cfg.Seed, 1)) //nolint:gosec // reproducible test traffic
		for {
			select {
			case <-done:
				return
			case <-time.After(15 * time.Millisecond):
			}
			o := s.tenants[r.IntN(len(s.tenants))]
			s.dp.Pools.Evict(pool.Key{Cluster: o.t.Placement.Cluster, Database: o.t.Placement.Database, Role: provision.AppRole})
			evicted.Add(1)
		}
	})
	fail := func(format string, args ...any) {
		if failures.Add(1) <= 20 {
			t.Errorf(format, args...)
		}
	}

	var wg sync.WaitGroup
	for w := range s.cfg.Workers {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(s.cfg.Seed, uint64(w)+2)) //nolint:gosec // reproducible test traffic
			for ops.Add(1) <= int64(s.cfg.Ops) && ctx.Err() == nil {
				o := s.tenants[r.IntN(len(s.tenants))]
				other := s.tenants[r.IntN(len(s.tenants))]
				switch p := r.IntN(100); {
				case p < 35:
					s.opWrite(ctx, o, &backends, fail)
				case p < 65:
					s.opRead(ctx, t, o, fail)
				case p < 75:
					s.opForeignWrite(ctx, t, o, other, fail)
				case p < 80:
					s.opForeignRead(ctx, t, o, other, fail)
				case p < 85:
					s.opPanic(ctx, o, fail)
				case p < 92:
					s.opCancel(ctx, o, r, fail)
				default:
					// A tenant switch on one goroutine: back to back, no pause.
					s.opWrite(ctx, o, &backends, fail)
					s.opRead(ctx, t, other, fail)
					s.opRead(ctx, t, o, fail)
				}
			}
		})
	}
	wg.Wait()
	close(done)
	evictor.Wait()

	// Every tenant holds exactly what it committed, nothing else.
	for _, o := range s.tenants {
		got, err := s.readAll(ctx, t, o)
		if err != nil {
			t.Errorf("final read of %s: %v", o.t.Slug, err)
			continue
		}
		want := o.snapshot()
		if missing, extra := diff(want, got); len(missing)+len(extra) > 0 {
			leak(t, "tenant %s (%s): missing %v, unexpected %v", o.t.Slug, o.t.Placement.Model, head(missing), head(extra))
		}
	}
	s.checkStorage(t)

	// Connections were shared between tenants.
	shared := 0
	backends.Range(func(_, v any) bool {
		n := 0
		v.(*sync.Map).Range(func(any, any) bool { n++; return true })
		if n > 1 {
			shared++
		}
		return true
	})
	if shared == 0 {
		t.Errorf("no backend served more than one tenant: connection reuse across tenants was not exercised")
	}
	st := s.dp.Pools.Stats()
	for _, c := range st.Clusters {
		t.Logf("cluster %s: budget %d, peak %d conns, %d pools opened, %d closed, %d acquires, %d evictions",
			c.Cluster, c.Budget, c.PeakConns, c.PoolsOpened, c.PoolsClosed, c.Acquires, c.ConnEvictions+c.PoolEvictions)
	}
	t.Logf("traffic: %d operations, %d failures, %d pool evictions, %d backends served several tenants", s.cfg.Ops, failures.Load(), evicted.Load(), shared)
}

// opWrite inserts a marker row and records it once committed, with the
// backend that served it.
func (s *isolation) opWrite(ctx context.Context, o *owner, backends *sync.Map, fail func(string, ...any)) {
	m := o.newMarker("w")
	var pid int64
	err := s.dp.Router.Tx(ctxOf(ctx, o), func(ctx context.Context, tx router.Tx) error {
		return tx.QueryRow(ctx, `INSERT INTO `+s.table+` (`+s.marker+`) VALUES ($1) RETURNING pg_backend_pid()`, m).Scan(&pid)
	})
	if err != nil {
		fail("write for %s (%s): %v", o.t.Slug, o.t.Placement.Model, err)
		return
	}
	o.mu.Lock()
	o.committed = append(o.committed, m)
	o.mu.Unlock()
	key := fmt.Sprintf("%s/%s/%d", o.t.Placement.Cluster, o.t.Placement.Database, pid)
	v, _ := backends.LoadOrStore(key, &sync.Map{})
	v.(*sync.Map).Store(o.t.ID, true)
}

// opRead reads everything and checks owner and completeness: every marker
// committed before the read began must be there.
func (s *isolation) opRead(ctx context.Context, t *testing.T, o *owner, fail func(string, ...any)) {
	before := o.snapshot()
	got, err := s.readAll(ctx, t, o)
	if err != nil {
		fail("read for %s (%s): %v", o.t.Slug, o.t.Placement.Model, err)
		return
	}
	if missing, _ := diff(before, got); len(missing) > 0 {
		leak(t, "tenant %s (%s) lost committed rows %v", o.t.Slug, o.t.Placement.Model, head(missing))
	}
}

// opForeignWrite aims an update and a delete at another tenant's marker.
func (s *isolation) opForeignWrite(ctx context.Context, t *testing.T, o, other *owner, fail func(string, ...any)) {
	if o == other {
		return
	}
	theirs := other.snapshot()
	if len(theirs) == 0 {
		return
	}
	target := theirs[len(theirs)-1]
	var updated, deleted int64
	err := s.dp.Router.Tx(ctxOf(ctx, o), func(ctx context.Context, tx router.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE `+s.table+` SET `+s.marker+` = $2 WHERE `+s.marker+` = $1`, target, o.newMarker("stolen"))
		if err != nil {
			return err
		}
		updated = tag.RowsAffected()
		tag, err = tx.Exec(ctx, `DELETE FROM `+s.table+` WHERE `+s.marker+` = $1`, target)
		deleted = tag.RowsAffected()
		return err
	})
	if err != nil {
		fail("foreign write from %s: %v", o.t.Slug, err)
		return
	}
	if updated+deleted > 0 {
		leak(t, "tenant %s (%s) updated %d and deleted %d rows of %s (%s)", o.t.Slug, o.t.Placement.Model, updated, deleted, other.t.Slug, other.t.Placement.Model)
	}
}

// opForeignRead looks another tenant's marker up.
func (s *isolation) opForeignRead(ctx context.Context, t *testing.T, o, other *owner, fail func(string, ...any)) {
	theirs := other.snapshot()
	if o == other || len(theirs) == 0 {
		return
	}
	var n int
	err := s.dp.Router.ReadTx(ctxOf(ctx, o), func(ctx context.Context, tx router.Tx) error {
		return tx.QueryRow(ctx, `SELECT count(*) FROM `+s.table+` WHERE `+s.marker+` = $1`, theirs[0]).Scan(&n)
	})
	if err != nil {
		fail("foreign read from %s: %v", o.t.Slug, err)
		return
	}
	if n > 0 {
		leak(t, "tenant %s (%s) found a row of %s (%s)", o.t.Slug, o.t.Placement.Model, other.t.Slug, other.t.Placement.Model)
	}
}

var errPanic = "tenantrytest: deliberate panic"

// opPanic writes and panics inside the transaction: nothing may remain.
func (s *isolation) opPanic(ctx context.Context, o *owner, fail func(string, ...any)) {
	defer func() {
		if r := recover(); r != nil && r != errPanic {
			panic(r)
		}
	}()
	_ = s.dp.Router.Tx(ctxOf(ctx, o), func(ctx context.Context, tx router.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO `+s.table+` (`+s.marker+`) VALUES ($1)`, o.newMarker("panic")); err != nil {
			fail("write before panic for %s: %v", o.t.Slug, err)
		}
		panic(errPanic)
	})
	fail("transaction of %s did not re-raise its panic", o.t.Slug)
}

// opCancel writes, then cancels the context mid-transaction, before or
// during a second statement: nothing may remain.
func (s *isolation) opCancel(ctx context.Context, o *owner, r *rand.Rand, fail func(string, ...any)) {
	cctx, cancel := context.WithCancel(ctxOf(ctx, o))
	defer cancel()
	second := r.IntN(2) == 0
	err := s.dp.Router.Tx(cctx, func(ctx context.Context, tx router.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO `+s.table+` (`+s.marker+`) VALUES ($1)`, o.newMarker("cancel")); err != nil {
			return err
		}
		if !second {
			cancel()
			return nil
		}
		go func() { time.Sleep(time.Millisecond); cancel() }()
		_, err := tx.Exec(ctx, `SELECT pg_sleep(0.05)`)
		return err
	})
	if err == nil {
		fail("transaction of %s committed after its context was cancelled", o.t.Slug)
	}
}

// checkStorage reads every physical location as the administrator and checks
// that each row's marker names the tenant its tenant_id says.
func (s *isolation) checkStorage(t *testing.T) {
	ctx := t.Context()
	byID := map[string]*owner{}
	for _, o := range s.tenants {
		byID[o.t.ID] = o
	}
	type loc struct{ cluster, database, schema string }
	seen := map[loc]bool{}
	for _, o := range s.tenants {
		p := o.t.Placement
		l := loc{p.Cluster, p.Database, p.Schema}
		if seen[l] {
			continue
		}
		seen[l] = true
		cl, err := s.dp.Store.Cluster(ctx, p.Cluster)
		if err != nil {
			t.Fatal(err)
		}
		cc, err := pgx.ParseConfig(cl.ConnString)
		if err != nil {
			t.Fatal(err)
		}
		cc.Database = p.Database
		conn, err := pgx.ConnectConfig(ctx, cc)
		if err != nil {
			t.Fatal(err)
		}
		qt := sqlident.MustQuote(p.Schema) + "." + s.table
		rows, err := conn.Query(ctx, `SELECT tenant_id::text, `+s.marker+` FROM `+qt)
		if err != nil {
			conn.Close(ctx)
			t.Fatalf("read %s/%s: %v", p.Database, p.Schema, err)
		}
		for rows.Next() {
			var id, m string
			if err := rows.Scan(&id, &m); err != nil {
				t.Fatal(err)
			}
			owner := byID[id]
			switch {
			case owner == nil:
				leak(t, "row %q in %s/%s has unknown tenant_id %s", m, p.Database, p.Schema, id)
			case !strings.HasPrefix(m, owner.t.Slug+"#"):
				leak(t, "row %q in %s/%s is stored under tenant %s", m, p.Database, p.Schema, owner.t.Slug)
			case owner.t.Placement != p:
				leak(t, "row %q of %s stored in %s/%s, not in its placement", m, owner.t.Slug, p.Database, p.Schema)
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		conn.Close(ctx)
	}
}

func diff(want, got []string) (missing, extra []string) {
	g := make(map[string]int, len(got))
	for _, m := range got {
		g[m]++
	}
	for _, m := range want {
		if g[m] == 0 {
			missing = append(missing, m)
			continue
		}
		g[m]--
	}
	for m, n := range g {
		for range n {
			extra = append(extra, m)
		}
	}
	return missing, extra
}

func head(s []string) []string {
	if len(s) > 5 {
		return s[:5]
	}
	return s
}

func sqlState(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// noTenant checks that having no tenant fails closed.
func (s *isolation) noTenant(t *testing.T) {
	ctx := t.Context()
	before := s.dp.Queries.Count()
	for _, c := range []context.Context{ctx, tenant.WithoutTenant(ctxOf(ctx, s.tenants[0]))} {
		err := s.dp.Router.Tx(c, func(ctx context.Context, tx router.Tx) error {
			_, err := tx.Exec(ctx, `SELECT 1`)
			return err
		})
		if !errors.Is(err, router.ErrNoTenant) {
			leak(t, "transaction without tenant: %v, want router.ErrNoTenant", err)
		}
	}
	if n := s.dp.Queries.Count() - before; n != 0 {
		leak(t, "%d queries sent for a transaction without tenant", n)
	}

	// Write a row for every shared and sharded tenant, then look at the
	// databases as the runtime role without any scope.
	for _, m := range []tenant.Model{tenant.ModelShared, tenant.ModelSharded} {
		for _, o := range s.byModel[m] {
			s.opWrite(ctx, o, &sync.Map{}, func(f string, a ...any) { t.Fatalf(f, a...) })
		}
	}
	locs := map[[2]string]*owner{}
	for _, m := range []tenant.Model{tenant.ModelShared, tenant.ModelSharded} {
		for _, o := range s.byModel[m] {
			locs[[2]string{o.t.Placement.Cluster, o.t.Placement.Database}] = o
		}
	}
	for l, o := range locs {
		conn, err := pgx.ConnectConfig(ctx, s.dp.AppConnConfig(l[0], l[1]))
		if err != nil {
			t.Fatal(err)
		}
		qt := sqlident.MustQuote(o.t.Placement.Schema) + "." + s.table
		for _, setup := range []string{
			"",
			// What a reused connection reports after a scoped transaction.
			`SELECT set_config('tenantry.tenant_id', '', false)`,
		} {
			if setup != "" {
				if _, err := conn.Exec(ctx, setup); err != nil {
					t.Fatal(err)
				}
			}
			var n int
			if err := conn.QueryRow(ctx, `SELECT count(*) FROM `+qt).Scan(&n); err != nil || n != 0 {
				leak(t, "%s/%s without tenant (%q): %d rows visible (err %v)", l[0], l[1], setup, n, err)
			}
			_, err := conn.Exec(ctx, `INSERT INTO `+qt+` (tenant_id, `+s.marker+`) VALUES ($1, $2)`, o.t.ID, o.t.Slug+"#forged")
			if sqlState(err) != "42501" {
				leak(t, "%s/%s without tenant: insert for %s: %v, want RLS violation", l[0], l[1], o.t.Slug, err)
			}
			for _, sql := range []string{`UPDATE ` + qt + ` SET ` + s.marker + ` = ` + s.marker, `DELETE FROM ` + qt} {
				tag, err := conn.Exec(ctx, sql)
				if err != nil || tag.RowsAffected() != 0 {
					leak(t, "%s/%s without tenant: %q touched %d rows (err %v)", l[0], l[1], sql, tag.RowsAffected(), err)
				}
			}
		}
		conn.Close(ctx)
	}
	// Tenant schemas and databases are closed to the runtime role itself.
	for _, m := range []tenant.Model{tenant.ModelSchema, tenant.ModelDatabase} {
		o := s.byModel[m][0]
		conn, err := pgx.ConnectConfig(ctx, s.dp.AppConnConfig(o.t.Placement.Cluster, o.t.Placement.Database))
		if err != nil {
			t.Fatal(err)
		}
		qt := sqlident.MustQuote(o.t.Placement.Schema) + "." + s.table
		if _, err := conn.Exec(ctx, `SELECT FROM `+qt); sqlState(err) != "42501" {
			leak(t, "runtime role without SET ROLE reads %s (%s): %v, want permission denied", o.t.Slug, m, err)
		}
		conn.Close(ctx)
	}
}

// escapes tries, from tenant A's transaction, to reach tenant B.
func (s *isolation) escapes(t *testing.T) {
	ctx := t.Context()
	// A refusal is any error: PostgreSQL says 42501 (permission denied), or
	// 42P01 when the role cannot even see the schema an unqualified name
	// would resolve in.
	expectDenied := func(what string, o *owner, stmts ...string) {
		t.Helper()
		err := s.dp.Router.Tx(ctxOf(ctx, o), func(ctx context.Context, tx router.Tx) error {
			for _, st := range stmts {
				if _, err := tx.Exec(ctx, st); err != nil {
					return err
				}
			}
			return nil
		})
		if err == nil {
			leak(t, "%s (tenant %s, %s) was allowed", what, o.t.Slug, o.t.Placement.Model)
		} else {
			t.Logf("stopped: %s (%s): SQLSTATE %s", what, o.t.Placement.Model, sqlState(err))
		}
	}
	known := func(what string, a, b *owner, fn func(ctx context.Context, tx router.Tx) error) {
		t.Helper()
		var rows int
		err := s.dp.Router.Tx(ctxOf(ctx, a), func(ctx context.Context, tx router.Tx) error {
			if err := fn(ctx, tx); err != nil {
				return err
			}
			return tx.QueryRow(ctx, `SELECT count(*) FROM `+s.table+` WHERE tenant_id = $1`, b.t.ID).Scan(&rows)
		})
		t.Logf("known limit (application code is trusted): %s (%s): %d rows of B visible, err %v", what, a.t.Placement.Model, rows, err)
	}

	for _, m := range tenant.Models {
		if len(s.byModel[m]) < 2 {
			t.Fatalf("need two tenants of model %s", m)
		}
	}
	count := `SELECT count(*) FROM ` + s.table
	for _, m := range tenant.Models {
		a, b := s.byModel[m][0], s.byModel[m][1]
		s.opWrite(ctx, b, &sync.Map{}, func(f string, args ...any) { t.Fatalf(f, args...) })
		expectDenied("SET ROLE to the owner role", a, "SET LOCAL ROLE "+provision.OwnerRole)
		expectDenied("SET ROLE to the reporting role", a, "SET LOCAL ROLE "+provision.ReportingRole)
		expectDenied("TRUNCATE", a, "TRUNCATE "+s.table)
		expectDenied("disable row-level security", a, "ALTER TABLE "+s.table+" DISABLE ROW LEVEL SECURITY")
		expectDenied("SET SESSION AUTHORIZATION", a, "SET SESSION AUTHORIZATION postgres")
		bRole, _ := provision.TenantRole(b.t.Slug)
		switch m {
		case tenant.ModelSchema:
			qb := sqlident.MustQuote(b.t.Placement.Schema) + "." + s.table
			expectDenied("read B's schema by qualified name", a, `SELECT * FROM `+qb)
			expectDenied("write B's schema by qualified name", a, `DELETE FROM `+qb)
			known("SET ROLE to B's role, then search B's schema", a, b, func(ctx context.Context, tx router.Tx) error {
				_, err := tx.Exec(ctx, `SELECT set_config('role', $1, true), set_config('search_path', $2, true)`, bRole, sqlident.MustQuote(b.t.Placement.Schema))
				return err
			})
		case tenant.ModelDatabase:
			// B's role has nothing in A's database, and B's rows are in
			// another database the connection cannot reach.
			expectDenied("SET ROLE to B's role inside A's database", a, "SET LOCAL ROLE "+sqlident.MustQuote(bRole), count)
		case tenant.ModelShared, tenant.ModelSharded:
			known("set_config('tenantry.tenant_id', B) inside A's transaction", a, b, func(ctx context.Context, tx router.Tx) error {
				_, err := tx.Exec(ctx, `SELECT set_config('tenantry.tenant_id', $1, true)`, b.t.ID)
				return err
			})
			var n int
			err := s.dp.Router.ReadTx(ctxOf(ctx, a), func(ctx context.Context, tx router.Tx) error {
				return tx.QueryRow(ctx, count+` WHERE tenant_id = $1`, b.t.ID).Scan(&n)
			})
			if err != nil || n != 0 {
				leak(t, "tenant %s filtering on B's tenant_id sees %d rows (err %v)", a.t.Slug, n, err)
			}
		}
	}
}

// evictInUse evicts the pool of a transaction while the transaction runs.
func (s *isolation) evictInUse(t *testing.T) {
	ctx := t.Context()
	for _, m := range tenant.Models {
		o := s.byModel[m][0]
		key := pool.Key{Cluster: o.t.Placement.Cluster, Database: o.t.Placement.Database, Role: provision.AppRole}
		mk := o.newMarker("evict")
		err := s.dp.Router.Tx(ctxOf(ctx, o), func(ctx context.Context, tx router.Tx) error {
			if _, err := tx.Exec(ctx, `INSERT INTO `+s.table+` (`+s.marker+`) VALUES ($1)`, mk); err != nil {
				return err
			}
			s.dp.Pools.Evict(key)
			_, err := tx.Exec(ctx, `SELECT count(*) FROM `+s.table)
			return err
		})
		if err != nil {
			t.Fatalf("transaction of %s across an eviction: %v", o.t.Slug, err)
		}
		o.mu.Lock()
		o.committed = append(o.committed, mk)
		o.mu.Unlock()
		got, err := s.readAll(ctx, t, o)
		if err != nil {
			t.Fatalf("read after eviction for %s: %v", o.t.Slug, err)
		}
		if missing, _ := diff([]string{mk}, got); len(missing) > 0 {
			t.Errorf("row written across an eviction is missing for %s", o.t.Slug)
		}
	}
}

// Hostile identifiers, as they could arrive in any source.
var hostileIdentifiers = []string{
	"acme'; DROP TABLE notes; --",
	`" OR 1=1 --`,
	"' OR ''='",
	"a;b",
	"acme;",
	"ACME",
	"Acme",
	"аcme", // Cyrillic а
	"ａｃｍｅ", // full-width
	"acme\u200b",
	"acme\x00",
	"acme%00",
	"%61cme",
	"../admin",
	"..",
	"a/b",
	"t_acme",
	"tenantry_t_acme",
	"tenantry_app",
	"$1",
	`a\b`,
	"xn--cme-k0a",
	"😀",
	"00000000-0000-0000-0000-00000000000G",
	"00000000-0000-0000-0000-000000000000' OR '1'='1",
	strings.Repeat("a", 300),
	"",
	" ",
	"a b",
	"-acme",
	"public",
	"pg_catalog",
	"current_setting('tenantry.tenant_id')",
}

// hostile sends every hostile identifier through every resolution source
// (path prefix, subdomain, header, host, JWT claim; also forged tokens and
// headers from untrusted peers) and requires a 4xx with no SQL sent.
func (s *isolation) hostile(t *testing.T) {
	key := make([]byte, 32)
	_, _ = crand.Read(key)
	jwtCfg := resolve.JWTConfig{Issuer: "tenantrytest", Audience: "tenantry", HMACKeys: [][]byte{key}}
	res, err := resolve.New(s.dp.Cache, &resolve.Config{Strategies: []resolve.Strategy{
		resolve.PathPrefix("/t/"),
		resolve.Subdomain("tenants.test"),
		resolve.Header("X-Tenant-ID", []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}),
		resolve.Host(),
		resolve.JWT(jwtCfg),
	}})
	if err != nil {
		t.Fatal(err)
	}
	token := func(key []byte, claim any) string {
		sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: key}, nil)
		if err != nil {
			t.Fatal(err)
		}
		tok, err := jwt.Signed(sig).Claims(jwt.Claims{
			Issuer: jwtCfg.Issuer, Audience: jwt.Audience{jwtCfg.Audience},
			Expiry: jwt.NewNumericDate(time.Now().Add(time.Minute)), IssuedAt: jwt.NewNumericDate(time.Now()),
		}).Claims(map[string]any{"tenant": claim}).Serialize()
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	otherKey := make([]byte, 32)
	_, _ = crand.Read(otherKey)
	h := res.Middleware(s.cfg.Handler(s.dp.Router))
	good := s.tenants[0].t

	serve := func(req *http.Request) (int, int64) {
		before := s.dp.Queries.Count()
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w.Code, s.dp.Queries.Count() - before
	}
	// Positive controls: the probe runs SQL for a valid tenant, by header
	// and by token.
	req := httptest.NewRequest("GET", s.cfg.Probe, nil)
	req.Header.Set("X-Tenant-ID", good.Slug)
	if code, n := serve(req); code/100 != 2 || n == 0 {
		t.Fatalf("probe %s for a valid tenant: status %d with %d queries; want 2xx and some", s.cfg.Probe, code, n)
	}
	req = httptest.NewRequest("GET", s.cfg.Probe, nil)
	req.Header.Set("Authorization", "Bearer "+token(key, good.Slug))
	if code, n := serve(req); code/100 != 2 || n == 0 {
		t.Fatalf("probe %s with a valid token: status %d with %d queries; want 2xx and some", s.cfg.Probe, code, n)
	}

	sources := map[string]func(v string) *http.Request{
		"header": func(v string) *http.Request {
			req := httptest.NewRequest("GET", s.cfg.Probe, nil)
			req.Header["X-Tenant-Id"] = []string{v}
			return req
		},
		"header-twice": func(v string) *http.Request {
			req := httptest.NewRequest("GET", s.cfg.Probe, nil)
			req.Header["X-Tenant-Id"] = []string{good.Slug, v}
			return req
		},
		"subdomain": func(v string) *http.Request {
			req := httptest.NewRequest("GET", s.cfg.Probe, nil)
			req.Host = v + ".tenants.test"
			return req
		},
		"host": func(v string) *http.Request {
			req := httptest.NewRequest("GET", s.cfg.Probe, nil)
			req.Host = v
			return req
		},
		"path": func(v string) *http.Request {
			req := httptest.NewRequest("GET", s.cfg.Probe, nil)
			req.URL.Path = "/t/" + v + s.cfg.Probe
			req.URL.RawPath = ""
			return req
		},
		"path-escaped": func(v string) *http.Request {
			req := httptest.NewRequest("GET", s.cfg.Probe, nil)
			req.URL.Path = "/t/" + v + s.cfg.Probe
			req.URL.RawPath = "/t/" + escapeAll(v) + s.cfg.Probe
			return req
		},
		"jwt-claim": func(v string) *http.Request {
			req := httptest.NewRequest("GET", s.cfg.Probe, nil)
			req.Header.Set("Authorization", "Bearer "+token(key, v))
			return req
		},
		"jwt-claim-not-a-string": func(v string) *http.Request {
			req := httptest.NewRequest("GET", s.cfg.Probe, nil)
			req.Header.Set("Authorization", "Bearer "+token(key, []string{good.Slug, v}))
			return req
		},
		"jwt-forged": func(v string) *http.Request {
			req := httptest.NewRequest("GET", s.cfg.Probe, nil)
			req.Header.Set("Authorization", "Bearer "+token(otherKey, good.Slug))
			return req
		},
		"jwt-garbage": func(v string) *http.Request {
			req := httptest.NewRequest("GET", s.cfg.Probe, nil)
			req.Header["Authorization"] = []string{"Bearer " + v}
			return req
		},
		"header-from-untrusted-peer": func(v string) *http.Request {
			req := httptest.NewRequest("GET", s.cfg.Probe, nil)
			req.RemoteAddr = "203.0.113.9:4444"
			req.Header.Set("X-Tenant-ID", good.Slug)
			return req
		},
	}
	for name, build := range sources {
		for _, v := range hostileIdentifiers {
			req := build(v)
			code, n := serve(req)
			if code < 400 || code > 499 || n != 0 {
				leak(t, "source %s, identifier %q: status %d with %d queries sent; want 4xx and none", name, v, code, n)
			}
		}
	}
}

// escapeAll percent-encodes every byte of s.
func escapeAll(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		fmt.Fprintf(&b, "%%%02X", s[i])
	}
	return b.String()
}
