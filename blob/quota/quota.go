package quota

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tenantry/tenantry/blob"
	"github.com/tenantry/tenantry/tenant"
)

// Limits are a tenant's storage limits. 0 means no limit.
type Limits struct {
	// MaxBytes caps the bytes the tenant stores in total.
	MaxBytes int64 `json:"max_bytes"`
	// MaxObjects caps the number of objects.
	MaxObjects int64 `json:"max_objects"`
	// MaxObjectSize caps the size of one object.
	MaxObjectSize int64 `json:"max_object_size"`
}

// Config configures a Quota.
type Config struct {
	// Default are the limits of a tenant whose tier is not in Tiers and who
	// has no override in tenantry.blob_quota. Default: no limits.
	Default Limits
	// Tiers are the limits by tenant tier. Default: none.
	Tiers map[string]Limits
	// ReservationTTL is how long a reservation counts if its upload never
	// commits or releases it (the process died). Uploads that take longer
	// renew it as they grow. Default 1 hour.
	ReservationTTL time.Duration
	// GrowStep is how much an upload without a declared size reserves at a
	// time as its bytes arrive. Default 8 MiB.
	GrowStep int64
}

// WithDefaults returns a copy of c with defaults filled in.
func (c *Config) WithDefaults() *Config {
	out := Config{}
	if c != nil {
		out = *c
	}
	if out.ReservationTTL == 0 {
		out.ReservationTTL = time.Hour
	}
	if out.GrowStep == 0 {
		out.GrowStep = 8 << 20
	}
	return &out
}

func (c *Config) validate() error {
	if c.ReservationTTL < time.Second || c.GrowStep < 1 {
		return errors.New("quota: invalid config: ReservationTTL must be at least 1s and GrowStep positive")
	}
	return nil
}

// Quota tracks and enforces per-tenant storage quotas in the catalog tables
// tenantry.blob_quota, tenantry.blob_usage and tenantry.blob_reservation
// (catalog migration 0003).
type Quota struct {
	pool *pgxpool.Pool
	cfg  *Config
}

// New returns a Quota using pool, a pool on the catalog database.
func New(pool *pgxpool.Pool, cfg *Config) (*Quota, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if pool == nil {
		return nil, errors.New("quota: nil pool")
	}
	return &Quota{pool: pool, cfg: cfg}, nil
}

// Usage is a tenant's storage use.
type Usage struct {
	Bytes           int64  `json:"bytes"`
	Objects         int64  `json:"objects"`
	ReservedBytes   int64  `json:"reserved_bytes"`
	ReservedObjects int64  `json:"reserved_objects"`
	Limits          Limits `json:"limits"`
}

// SetLimits stores limits for the tenant, overriding its tier's. A nil
// field keeps the tier default.
func (q *Quota) SetLimits(ctx context.Context, tenantID string, maxBytes, maxObjects, maxObjectSize *int64) error {
	_, err := q.pool.Exec(ctx, `
		INSERT INTO tenantry.blob_quota (tenant_id, max_bytes, max_objects, max_object_size)
		VALUES ($1, $2, $3, $4)
		ON CONFLICT (tenant_id) DO UPDATE SET max_bytes = $2, max_objects = $3, max_object_size = $4, updated_at = now()`,
		tenantID, maxBytes, maxObjects, maxObjectSize)
	if err != nil {
		return fmt.Errorf("quota: set limits: %w", err)
	}
	return nil
}

// limits returns the effective limits of t: the override row, field by
// field, over the tier default.
func (q *Quota) limits(ctx context.Context, db pgx.Tx, t *tenant.Tenant) (Limits, error) {
	l, ok := q.cfg.Tiers[t.Tier]
	if !ok {
		l = q.cfg.Default
	}
	var mb, mo, ms *int64
	err := db.QueryRow(ctx, `SELECT max_bytes, max_objects, max_object_size FROM tenantry.blob_quota WHERE tenant_id = $1`, t.ID).Scan(&mb, &mo, &ms)
	if errors.Is(err, pgx.ErrNoRows) {
		return l, nil
	}
	if err != nil {
		return Limits{}, fmt.Errorf("quota: read limits: %w", err)
	}
	if mb != nil {
		l.MaxBytes = *mb
	}
	if mo != nil {
		l.MaxObjects = *mo
	}
	if ms != nil {
		l.MaxObjectSize = *ms
	}
	return l, nil
}

// Usage returns t's usage and effective limits.
func (q *Quota) Usage(ctx context.Context, t *tenant.Tenant) (Usage, error) {
	var u Usage
	err := pgx.BeginFunc(ctx, q.pool, func(tx pgx.Tx) error {
		var err error
		if u.Limits, err = q.limits(ctx, tx, t); err != nil {
			return err
		}
		err = tx.QueryRow(ctx, `
			SELECT coalesce((SELECT bytes FROM tenantry.blob_usage WHERE tenant_id = $1), 0),
			       coalesce((SELECT objects FROM tenantry.blob_usage WHERE tenant_id = $1), 0),
			       coalesce(sum(bytes), 0), coalesce(sum(objects), 0)
			FROM tenantry.blob_reservation WHERE tenant_id = $1 AND expires_at > now()`, t.ID).
			Scan(&u.Bytes, &u.Objects, &u.ReservedBytes, &u.ReservedObjects)
		return err
	})
	if err != nil {
		return Usage{}, fmt.Errorf("quota: usage: %w", err)
	}
	return u, nil
}

// Reservation is space held for one upload. Exactly one of Commit or Release
// must be called.
type Reservation struct {
	q       *Quota
	t       *tenant.Tenant
	id      int64
	bytes   int64
	objects int64
	limits  Limits
}

// Bytes returns the bytes currently reserved.
func (r *Reservation) Bytes() int64 { return r.bytes }

// Reserve holds bytes and objects for t, or fails with a *blob.LimitError
// naming the first limit the request would break. It locks t's usage row,
// so concurrent reservations of one tenant cannot together exceed a limit.
func (q *Quota) Reserve(ctx context.Context, t *tenant.Tenant, bytes, objects int64) (*Reservation, error) {
	r := &Reservation{q: q, t: t}
	if err := r.add(ctx, bytes, objects); err != nil {
		return nil, err
	}
	return r, nil
}

// Grow adds bytes to the reservation, under the same checks as Reserve.
func (r *Reservation) Grow(ctx context.Context, bytes int64) error {
	return r.add(ctx, bytes, 0)
}

func (r *Reservation) add(ctx context.Context, bytes, objects int64) error {
	q := r.q
	return pgx.BeginFunc(ctx, q.pool, func(tx pgx.Tx) error {
		// Take the tenant's lock: the usage row (created on first use).
		var used, usedObjects int64
		err := tx.QueryRow(ctx, `
			INSERT INTO tenantry.blob_usage AS u (tenant_id) VALUES ($1)
			ON CONFLICT (tenant_id) DO UPDATE SET tenant_id = u.tenant_id
			RETURNING bytes, objects`, r.t.ID).Scan(&used, &usedObjects)
		if err != nil {
			return fmt.Errorf("quota: lock usage: %w", err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM tenantry.blob_reservation WHERE tenant_id = $1 AND expires_at <= now()`, r.t.ID); err != nil {
			return fmt.Errorf("quota: expire reservations: %w", err)
		}
		var resBytes, resObjects int64
		if err := tx.QueryRow(ctx, `
			SELECT coalesce(sum(bytes), 0), coalesce(sum(objects), 0) FROM tenantry.blob_reservation
			WHERE tenant_id = $1 AND id <> $2`, r.t.ID, r.id).Scan(&resBytes, &resObjects); err != nil {
			return fmt.Errorf("quota: read reservations: %w", err)
		}
		l, err := q.limits(ctx, tx, r.t)
		if err != nil {
			return err
		}
		r.limits = l
		newBytes, newObjects := r.bytes+bytes, r.objects+objects
		if l.MaxObjects > 0 && objects > 0 && usedObjects+resObjects+newObjects > l.MaxObjects {
			return &blob.LimitError{Limit: blob.LimitObjects, Max: l.MaxObjects, Used: usedObjects + resObjects, Requested: newObjects}
		}
		if l.MaxBytes > 0 && bytes > 0 && used+resBytes+newBytes > l.MaxBytes {
			return &blob.LimitError{Limit: blob.LimitBytes, Max: l.MaxBytes, Used: used + resBytes, Requested: newBytes}
		}
		ttl := q.cfg.ReservationTTL
		if r.id == 0 {
			err = tx.QueryRow(ctx, `
				INSERT INTO tenantry.blob_reservation (tenant_id, bytes, objects, expires_at)
				VALUES ($1, $2, $3, now() + $4::interval) RETURNING id`, r.t.ID, newBytes, newObjects, ttl).Scan(&r.id)
		} else {
			// Upsert: an expired reservation may have been deleted meanwhile.
			_, err = tx.Exec(ctx, `
				INSERT INTO tenantry.blob_reservation (id, tenant_id, bytes, objects, expires_at)
				OVERRIDING SYSTEM VALUE VALUES ($1, $2, $3, $4, now() + $5::interval)
				ON CONFLICT (id) DO UPDATE SET bytes = $3, objects = $4, expires_at = now() + $5::interval`,
				r.id, r.t.ID, newBytes, newObjects, ttl)
		}
		if err != nil {
			return fmt.Errorf("quota: reserve: %w", err)
		}
		r.bytes, r.objects = newBytes, newObjects
		return nil
	})
}

// Commit ends the reservation and adds deltaBytes and deltaObjects (which
// may be negative, for an overwrite with a smaller object) to the tenant's
// usage, in one transaction.
func (r *Reservation) Commit(ctx context.Context, deltaBytes, deltaObjects int64) error {
	return pgx.BeginFunc(ctx, r.q.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM tenantry.blob_reservation WHERE id = $1`, r.id); err != nil {
			return fmt.Errorf("quota: commit: %w", err)
		}
		return r.q.apply(ctx, tx, r.t.ID, deltaBytes, deltaObjects)
	})
}

// Release ends the reservation without changing usage.
func (r *Reservation) Release(ctx context.Context) error {
	if _, err := r.q.pool.Exec(ctx, `DELETE FROM tenantry.blob_reservation WHERE id = $1`, r.id); err != nil {
		return fmt.Errorf("quota: release: %w", err)
	}
	return nil
}

func (q *Quota) apply(ctx context.Context, tx pgx.Tx, tenantID string, deltaBytes, deltaObjects int64) error {
	_, err := tx.Exec(ctx, `
		INSERT INTO tenantry.blob_usage AS u (tenant_id, bytes, objects) VALUES ($1, GREATEST($2, 0), GREATEST($3, 0))
		ON CONFLICT (tenant_id) DO UPDATE
		SET bytes = GREATEST(u.bytes + $2, 0), objects = GREATEST(u.objects + $3, 0), updated_at = now()`,
		tenantID, deltaBytes, deltaObjects)
	if err != nil {
		return fmt.Errorf("quota: update usage: %w", err)
	}
	return nil
}

// Record adds deltas to a tenant's usage without a reservation (a delete).
func (q *Quota) Record(ctx context.Context, tenantID string, deltaBytes, deltaObjects int64) error {
	return pgx.BeginFunc(ctx, q.pool, func(tx pgx.Tx) error { return q.apply(ctx, tx, tenantID, deltaBytes, deltaObjects) })
}

// Reconcile recomputes the usage of the tenant in ctx by listing its
// objects in store, and stores it. It corrects drift left by crashes between
// a write and its commit, or by writes around Tenantry. It costs one List
// page per 1000 objects.
func (q *Quota) Reconcile(ctx context.Context, store blob.Store) (Usage, error) {
	t, _, err := blob.Scope(ctx)
	if err != nil {
		return Usage{}, err
	}
	var bytes, objects int64
	after := ""
	for {
		page, err := store.List(ctx, blob.ListOptions{StartAfter: after})
		if err != nil {
			return Usage{}, fmt.Errorf("quota: reconcile: %w", err)
		}
		for _, o := range page.Objects {
			bytes += o.Size
			objects++
		}
		if page.Next == "" {
			break
		}
		after = page.Next
	}
	_, err = q.pool.Exec(ctx, `
		INSERT INTO tenantry.blob_usage AS u (tenant_id, bytes, objects) VALUES ($1, $2, $3)
		ON CONFLICT (tenant_id) DO UPDATE SET bytes = $2, objects = $3, updated_at = now()`, t.ID, bytes, objects)
	if err != nil {
		return Usage{}, fmt.Errorf("quota: reconcile: %w", err)
	}
	return q.Usage(ctx, t)
}
