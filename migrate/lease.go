package migrate

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrLeased is returned (wrapped in a *LeaseConflictError) when a tenant is
// leased by another owner.
var ErrLeased = errors.New("tenant is leased by another operation")

// Lease is a lease on a tenant, held in the catalog's tenantry.tenant_lease
// table while ExpiresAt is in the future.
type Lease struct {
	TenantID   string    `json:"tenant_id"`
	Owner      string    `json:"owner"`
	Purpose    string    `json:"purpose"`
	AcquiredAt time.Time `json:"acquired_at"`
	ExpiresAt  time.Time `json:"expires_at"`
}

// LeaseConflictError says who holds the lease that was wanted. It matches
// ErrLeased with errors.Is.
type LeaseConflictError struct {
	Held Lease
}

func (e *LeaseConflictError) Error() string {
	return fmt.Sprintf("tenant %s is leased by %s for %s until %s", e.Held.TenantID, e.Held.Owner, e.Held.Purpose,
		e.Held.ExpiresAt.UTC().Format(time.RFC3339))
}

// Is makes errors.Is(err, ErrLeased) true.
func (e *LeaseConflictError) Is(target error) bool { return target == ErrLeased }

// Lease purposes.
const (
	// PurposeMigrate is the purpose of the leases a rollout holds.
	PurposeMigrate = "migrate"
	// PurposeMove is the purpose a tenant move takes its lease for.
	PurposeMove = "move"
)

// Leases takes, renews and releases tenant leases in the catalog. A long
// operation on a tenant's data (a fleet migration of its target, a move
// between clusters or models) holds the tenant's lease for its whole
// duration and renews it well before it expires; whoever finds a tenant
// leased by someone else waits or gives up. It is the one protocol both the
// rollout engine and the tenant mover follow.
type Leases struct {
	pool *pgxpool.Pool
}

// NewLeases returns Leases on the catalog pool.
func NewLeases(pool *pgxpool.Pool) *Leases { return &Leases{pool: pool} }

var purposeRe = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)

// Acquire leases every tenant of tenantIDs to owner for purpose until ttl
// from now, all or nothing: if any of them is leased by another owner and
// not expired, nothing is taken and a *LeaseConflictError names the holder.
// Leases the owner already holds are extended.
func (l *Leases) Acquire(ctx context.Context, owner, purpose string, ttl time.Duration, tenantIDs ...string) error {
	if owner == "" || !purposeRe.MatchString(purpose) || ttl <= 0 {
		return errors.New("migrate: lease needs an owner, a purpose of [a-z0-9-] and a positive ttl")
	}
	for _, id := range tenantIDs {
		if !uuidRe.MatchString(id) {
			return fmt.Errorf("migrate: lease: tenant id %q is not a UUID", truncate(id, 64))
		}
	}
	return l.acquire(ctx, owner, purpose, ttl, "", func(n int) string {
		return fmt.Sprintf(`SELECT unnest($%d::uuid[])`, n)
	}, tenantIDs)
}

// acquire leases the tenants selected by the query tenants(n) renders with
// its parameters args numbered from $n, and takes over unexpired leases
// whose owner starts with takeover (when not "").
func (l *Leases) acquire(ctx context.Context, owner, purpose string, ttl time.Duration, takeover string, tenants func(n int) string, args ...any) error {
	params := append([]any{owner, purpose, ttl.Seconds(), takeover}, args...)
	return pgx.BeginFunc(ctx, l.pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO tenantry.tenant_lease (tenant_id, owner, purpose, expires_at)
SELECT id, $1, $2, now() + make_interval(secs => $3) FROM (`+tenants(5)+`) AS s (id)
ON CONFLICT (tenant_id) DO UPDATE SET owner = EXCLUDED.owner, purpose = EXCLUDED.purpose,
    acquired_at = CASE WHEN tenant_lease.owner = EXCLUDED.owner THEN tenant_lease.acquired_at ELSE now() END,
    expires_at = EXCLUDED.expires_at
WHERE tenant_lease.owner = EXCLUDED.owner OR tenant_lease.expires_at <= now()
   OR ($4 <> '' AND starts_with(tenant_lease.owner, $4))`, params...)
		if err != nil {
			return fmt.Errorf("migrate: acquire leases: %w", err)
		}
		var held Lease
		err = tx.QueryRow(ctx, `SELECT l.tenant_id::text, l.owner, l.purpose, l.acquired_at, l.expires_at
FROM tenantry.tenant_lease l WHERE l.tenant_id IN (`+tenants(2)+`) AND l.owner <> $1
LIMIT 1`, append([]any{owner}, args...)...).Scan(&held.TenantID, &held.Owner, &held.Purpose, &held.AcquiredAt, &held.ExpiresAt)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("migrate: check leases: %w", err)
		}
		return &LeaseConflictError{Held: held} // rolls back what this call took
	})
}

// Renew extends every lease owner holds to ttl from now and returns how many
// it holds.
func (l *Leases) Renew(ctx context.Context, owner string, ttl time.Duration) (int, error) {
	tag, err := l.pool.Exec(ctx, `UPDATE tenantry.tenant_lease SET expires_at = now() + make_interval(secs => $2)
WHERE owner = $1`, owner, ttl.Seconds())
	if err != nil {
		return 0, fmt.Errorf("migrate: renew leases: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// Release gives up owner's leases on tenantIDs, or all of owner's leases when
// none are given.
func (l *Leases) Release(ctx context.Context, owner string, tenantIDs ...string) error {
	var err error
	if len(tenantIDs) == 0 {
		_, err = l.pool.Exec(ctx, `DELETE FROM tenantry.tenant_lease WHERE owner = $1`, owner)
	} else {
		_, err = l.pool.Exec(ctx, `DELETE FROM tenantry.tenant_lease WHERE owner = $1 AND tenant_id = ANY($2::uuid[])`, owner, tenantIDs)
	}
	if err != nil {
		return fmt.Errorf("migrate: release leases: %w", err)
	}
	return nil
}

// Holder returns the unexpired lease on a tenant, or nil.
func (l *Leases) Holder(ctx context.Context, tenantID string) (*Lease, error) {
	var h Lease
	err := l.pool.QueryRow(ctx, `SELECT tenant_id::text, owner, purpose, acquired_at, expires_at FROM tenantry.tenant_lease
WHERE tenant_id::text = $1 AND expires_at > now()`, tenantID).Scan(&h.TenantID, &h.Owner, &h.Purpose, &h.AcquiredAt, &h.ExpiresAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("migrate: read lease: %w", err)
	}
	return &h, nil
}

// targetTenants selects the tenants placed on a target, its cluster,
// database and schema being parameters $n to $n+2.
func targetTenants(n int) string {
	return fmt.Sprintf(`SELECT id FROM tenantry.tenant WHERE placement_cluster = $%d AND placement_database = $%d AND placement_schema = $%d`, n, n+1, n+2)
}

// acquireTarget leases every tenant placed on t to owner for a migration.
// Leases of an earlier rollout (owner starting with runOwnerPrefix) are
// taken over: only the engine holding the rollout lock calls it, so such a
// rollout is dead.
func (l *Leases) acquireTarget(ctx context.Context, owner string, ttl time.Duration, t Target) error {
	return l.acquire(ctx, owner, PurposeMigrate, ttl, runOwnerPrefix, targetTenants, t.Cluster, t.Database, t.Schema)
}

// releaseTarget gives up owner's leases on the tenants of t.
func (l *Leases) releaseTarget(ctx context.Context, owner string, t Target) error {
	_, err := l.pool.Exec(ctx, `DELETE FROM tenantry.tenant_lease WHERE owner = $1 AND tenant_id IN (
SELECT id FROM tenantry.tenant WHERE placement_cluster = $2 AND placement_database = $3 AND placement_schema = $4)`,
		owner, t.Cluster, t.Database, t.Schema)
	if err != nil {
		return fmt.Errorf("migrate: release leases: %w", err)
	}
	return nil
}

// runOwnerPrefix starts the lease owner of every rollout.
const runOwnerPrefix = "migrate-run/"
