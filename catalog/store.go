package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Config configures a Store and a Cache.
type Config struct {
	// Logger receives the catalog's log records. Default: discard.
	Logger *slog.Logger

	// StaleAfter bounds how long a Cache keeps answering after losing its
	// notification connection to the catalog. Past it, lookups return
	// ErrUnavailable rather than risk serving a suspended tenant. Default 10s.
	StaleAfter time.Duration

	// ResyncInterval is how often a Cache reloads everything, as a defence
	// against a lost notification. Default 5 minutes.
	ResyncInterval time.Duration

	// ReconnectDelay is the first wait before a Cache reconnects its
	// notification connection; it doubles up to 5s. Default 100ms.
	ReconnectDelay time.Duration
}

// WithDefaults returns a copy of c with defaults filled in. c may be nil.
func (c *Config) WithDefaults() *Config {
	out := Config{}
	if c != nil {
		out = *c
	}
	if out.Logger == nil {
		out.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if out.StaleAfter == 0 {
		out.StaleAfter = 10 * time.Second
	}
	if out.ResyncInterval == 0 {
		out.ResyncInterval = 5 * time.Minute
	}
	if out.ReconnectDelay == 0 {
		out.ReconnectDelay = 100 * time.Millisecond
	}
	return &out
}

func (c *Config) validate() error {
	if c.StaleAfter < 0 || c.ResyncInterval < 0 || c.ReconnectDelay < 0 {
		return errors.New("catalog config: durations must not be negative")
	}
	return nil
}

// Store reads and writes the catalog in PostgreSQL. Every write is one
// transaction that also appends to the audit log; updates use optimistic
// concurrency on the record's version.
type Store struct {
	pool   *pgxpool.Pool
	config *Config
	logger *slog.Logger
}

// NewStore returns a Store on pool, which must reach the catalog database.
func NewStore(pool *pgxpool.Pool, cfg *Config) (*Store, error) {
	if pool == nil {
		return nil, errors.New("catalog: pool is nil")
	}
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Store{pool: pool, config: cfg, logger: cfg.Logger}, nil
}

// Pool returns the catalog's connection pool.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Actor is who makes an administrative change, recorded in the audit log.
type Actor struct {
	// Name identifies the operator or service ("alice", "cli", "api:token").
	Name string
	// Reason is why, when the caller gives one.
	Reason string
}

func (a Actor) validate() error {
	if a.Name == "" {
		return &ValidationError{Field: "actor", Reason: "an administrative change needs an actor"}
	}
	return nil
}

// AuditEntry is one record of the append-only audit log.
type AuditEntry struct {
	ID       int64           `json:"id"`
	At       time.Time       `json:"at"`
	Actor    string          `json:"actor"`
	Action   string          `json:"action"`
	TenantID string          `json:"tenant_id,omitempty"`
	Target   string          `json:"target,omitempty"`
	Reason   string          `json:"reason,omitempty"`
	Before   json.RawMessage `json:"before,omitempty"`
	After    json.RawMessage `json:"after,omitempty"`
}

// AuditFilter selects audit entries, newest first.
type AuditFilter struct {
	// TenantID limits entries to one tenant. Default: all.
	TenantID string
	// Limit caps the number of entries. Default 100, at most 1000.
	Limit int
}

func (s *Store) audit(ctx context.Context, tx pgx.Tx, actor Actor, action, tenantID, target string, before, after any) error {
	var b, a []byte
	var err error
	if before != nil {
		if b, err = json.Marshal(before); err != nil {
			return fmt.Errorf("encode audit before-image: %w", err)
		}
	}
	if after != nil {
		if a, err = json.Marshal(after); err != nil {
			return fmt.Errorf("encode audit after-image: %w", err)
		}
	}
	_, err = tx.Exec(ctx, `INSERT INTO tenantry.audit_log (actor, action, tenant_id, target, reason, before, after)
VALUES ($1, $2, NULLIF($3, '')::uuid, $4, $5, $6, $7)`, actor.Name, action, tenantID, target, actor.Reason, b, a)
	if err != nil {
		return fmt.Errorf("append audit log: %w", err)
	}
	return nil
}

// Audit returns audit entries, newest first.
func (s *Store) Audit(ctx context.Context, f AuditFilter) ([]AuditEntry, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	if f.Limit > 1000 {
		f.Limit = 1000
	}
	if f.TenantID != "" && !isUUID(f.TenantID) {
		return nil, &ValidationError{Field: "tenant_id", Reason: "must be a UUID"}
	}
	rows, err := s.pool.Query(ctx, `SELECT id, at, actor, action, COALESCE(tenant_id::text, ''), target, reason, before, after
FROM tenantry.audit_log
WHERE ($1 = '' OR tenant_id = NULLIF($1, '')::uuid)
ORDER BY id DESC LIMIT $2`, f.TenantID, f.Limit)
	if err != nil {
		return nil, fmt.Errorf("read audit log: %w", err)
	}
	entries, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (AuditEntry, error) {
		var e AuditEntry
		var before, after []byte
		err := row.Scan(&e.ID, &e.At, &e.Actor, &e.Action, &e.TenantID, &e.Target, &e.Reason, &before, &after)
		e.Before, e.After = before, after
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("read audit log: %w", err)
	}
	return entries, nil
}

// inTx runs fn in a transaction.
func (s *Store) inTx(ctx context.Context, fn func(pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, s.pool, fn)
}

// uniqueViolation returns the constraint name if err is a unique violation.
func uniqueViolation(err error) (string, bool) {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		return pgErr.ConstraintName, true
	}
	return "", false
}

func foreignKeyViolation(err error) (string, bool) {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23503" {
		return pgErr.ConstraintName, true
	}
	return "", false
}

// ExistsError says which unique field a create or update collided on. It
// matches ErrExists with errors.Is.
type ExistsError struct {
	Field string
	Value string
}

func (e *ExistsError) Error() string {
	return fmt.Sprintf("%s %q already exists", e.Field, e.Value)
}

// Is makes errors.Is(err, ErrExists) true.
func (e *ExistsError) Is(target error) bool { return target == ErrExists }
