package migrate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tenantry/tenantry/catalog"
	"github.com/tenantry/tenantry/internal/sqlident"
	"github.com/tenantry/tenantry/migrate/lint"
)

var (
	// ErrRunInProgress is returned when another engine holds the rollout
	// lock of the catalog: only one rollout runs at a time.
	ErrRunInProgress = errors.New("migrate: another rollout is running")
	// ErrUnfinishedRun is returned by Up when a run is still unfinished
	// (running after a crash, or halted): resume it or abort it first.
	ErrUnfinishedRun = errors.New("migrate: an unfinished rollout exists; resume or abort it")
	// ErrNoRun is returned by Resume and Abort when there is no unfinished
	// run.
	ErrNoRun = errors.New("migrate: no unfinished rollout")
	// ErrHalted is returned (wrapped) by Up and Resume when the error budget
	// stopped the rollout, or targets stayed blocked; the Report says which.
	ErrHalted = errors.New("migrate: rollout halted")
	// ErrLintFailed is returned (wrapped in a *LintError) when a pending
	// step has lint findings it does not allow.
	ErrLintFailed = errors.New("migrate: safety lint failed")
	// ErrLockTimeout is returned (wrapped) when a step could not get its
	// locks within lock_timeout after every retry.
	ErrLockTimeout = errors.New("migrate: lock timeout")
	// ErrTargetLocked is returned (wrapped) when another migrator held the
	// target's advisory lock for longer than Config.TargetLockWait.
	ErrTargetLocked = errors.New("migrate: target is locked by another migrator")
	// ErrChecksumMismatch is returned (wrapped) when a target applied a
	// version whose file has changed since.
	ErrChecksumMismatch = errors.New("migrate: applied migration was edited")
	// ErrAhead is returned (wrapped) when a target applied versions the
	// source does not have (a newer release migrated it).
	ErrAhead = errors.New("migrate: target is ahead of the source")
	// ErrLeaseLost is the cause of a run's cancellation when its leases
	// could not be renewed in time.
	ErrLeaseLost = errors.New("migrate: tenant leases could not be renewed")
)

// Config configures an Engine.
type Config struct {
	// Source holds the application schema's migrations. Required.
	Source *Source

	// Logger receives the engine's records; target records carry "target",
	// and "tenant" where a target holds one tenant. Default: discard.
	Logger *slog.Logger

	// OwnerRole is the role DDL runs as (SET ROLE), the owner of the tenant
	// tables; the cluster's administrative role must be a member of it (a
	// superuser is). Data changes (UPDATE, INSERT, DELETE, MERGE, WITH) run
	// as the administrative role itself, so that they see every row of a
	// shared table under forced row-level security. Default
	// "tenantry_owner".
	OwnerRole string

	// Templates are the provisioning templates migrated with the fleet, on
	// every primary cluster where they exist. Default (nil): the template
	// database "tenantry_template", schema "app". An empty, non-nil slice
	// migrates no template.
	Templates []TemplateRef

	// LockTimeout is lock_timeout for every statement: the longest any
	// query of live traffic can wait behind a migration's lock request.
	// Default 500ms.
	LockTimeout time.Duration
	// LockRetries is how many times a statement that hit lock_timeout (or
	// a deadlock) is retried before its target fails. Default 8.
	LockRetries int
	// RetryBackoff is the wait before the first retry; it doubles with
	// each retry up to MaxRetryBackoff, with jitter. Default 200ms.
	RetryBackoff time.Duration
	// MaxRetryBackoff caps the wait between retries. Default 5s.
	MaxRetryBackoff time.Duration
	// StatementTimeout is statement_timeout for every statement; a step
	// header may override it. Default 10 minutes.
	StatementTimeout time.Duration

	// TargetLockWait is how long the engine waits for a target's advisory
	// lock held by another migrator (or a dying session of a crashed one)
	// before the target fails with ErrTargetLocked. Default 1 minute.
	TargetLockWait time.Duration
	// LeaseTTL is the life of a tenant lease; the engine renews its leases
	// every LeaseTTL/3 and stops the rollout if it cannot for 2/3 of it.
	// Default 1 minute.
	LeaseTTL time.Duration
	// RunLockWait is how long Resume and Abort wait for the rollout lock of
	// an engine that just died (its catalog session may take a moment to
	// go). Up never waits. Default 10s.
	RunLockWait time.Duration
	// ConnectTimeout bounds each connection to a cluster. Default 10s.
	ConnectTimeout time.Duration
	// MaxBatches bounds the runs of one batch step on one target, against a
	// batch statement that never reaches zero rows. Default 1,000,000.
	MaxBatches int
	// ApplicationName is the application_name of the engine's sessions.
	// Default "tenantry-migrate".
	ApplicationName string

	// Baseline is the version of targets that have no ledger yet: their
	// tables were built by other means (provisioning from DDL equal to the
	// steps up to Baseline, or an older tool). The first visit records steps
	// up to Baseline as done without running them. Default 0: a target
	// without a ledger starts from nothing.
	Baseline int

	// AfterStep, if set, runs after each step on each target, in the
	// step's recording transaction (so atomically with the step for a tx
	// step), as the administrative role with search_path set to the target
	// schema. Provisioning uses it to put row-level security on tables a
	// step created in a shared or sharded target. Default none.
	AfterStep func(ctx context.Context, tx pgx.Tx, t Target) error

	// Identity names this process in leases and the run record. Default
	// "<hostname>:<pid>".
	Identity string
}

// Defaults of the Config fields.
const (
	DefaultOwnerRole        = "tenantry_owner"
	DefaultTemplateDatabase = "tenantry_template"
	DefaultLockTimeout      = 500 * time.Millisecond
	DefaultLockRetries      = 8
	DefaultRetryBackoff     = 200 * time.Millisecond
	DefaultMaxRetryBackoff  = 5 * time.Second
	DefaultStatementTimeout = 10 * time.Minute
	DefaultTargetLockWait   = time.Minute
	DefaultLeaseTTL         = time.Minute
	DefaultConnectTimeout   = 10 * time.Second
	DefaultRunLockWait      = 10 * time.Second
	DefaultMaxBatches       = 1_000_000
	DefaultApplicationName  = "tenantry-migrate"
)

// WithDefaults returns a copy of c with defaults filled in. c may be nil.
func (c *Config) WithDefaults() *Config {
	out := Config{}
	if c != nil {
		out = *c
	}
	if out.Logger == nil {
		out.Logger = slog.New(slog.DiscardHandler)
	}
	if out.OwnerRole == "" {
		out.OwnerRole = DefaultOwnerRole
	}
	if out.Templates == nil {
		out.Templates = []TemplateRef{{Database: DefaultTemplateDatabase, Schema: "app", IsDatabase: true}}
	}
	setDur := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	setDur(&out.LockTimeout, DefaultLockTimeout)
	setDur(&out.RetryBackoff, DefaultRetryBackoff)
	setDur(&out.MaxRetryBackoff, DefaultMaxRetryBackoff)
	setDur(&out.StatementTimeout, DefaultStatementTimeout)
	setDur(&out.TargetLockWait, DefaultTargetLockWait)
	setDur(&out.LeaseTTL, DefaultLeaseTTL)
	setDur(&out.ConnectTimeout, DefaultConnectTimeout)
	setDur(&out.RunLockWait, DefaultRunLockWait)
	if out.LockRetries == 0 {
		out.LockRetries = DefaultLockRetries
	}
	if out.MaxBatches == 0 {
		out.MaxBatches = DefaultMaxBatches
	}
	if out.ApplicationName == "" {
		out.ApplicationName = DefaultApplicationName
	}
	if out.Identity == "" {
		host, _ := os.Hostname()
		out.Identity = fmt.Sprintf("%s:%d", host, os.Getpid())
	}
	return &out
}

func (c *Config) validate() error {
	if c.Source == nil {
		return errors.New("migrate: Config.Source is required")
	}
	if len(c.Source.Steps()) == 0 {
		return errEmptySource
	}
	if err := sqlident.Validate(c.OwnerRole); err != nil {
		return fmt.Errorf("migrate: Config.OwnerRole: %w", err)
	}
	for _, t := range c.Templates {
		if err := sqlident.Validate(t.Database); err != nil {
			return fmt.Errorf("migrate: Config.Templates: %w", err)
		}
		if err := sqlident.Validate(t.Schema); err != nil {
			return fmt.Errorf("migrate: Config.Templates: %w", err)
		}
	}
	for name, d := range map[string]time.Duration{
		"LockTimeout": c.LockTimeout, "RetryBackoff": c.RetryBackoff, "MaxRetryBackoff": c.MaxRetryBackoff,
		"StatementTimeout": c.StatementTimeout, "TargetLockWait": c.TargetLockWait, "LeaseTTL": c.LeaseTTL,
		"ConnectTimeout": c.ConnectTimeout, "RunLockWait": c.RunLockWait,
	} {
		if d < 0 {
			return fmt.Errorf("migrate: Config.%s must not be negative", name)
		}
	}
	if c.Baseline < 0 || c.Baseline > c.Source.Head() {
		return fmt.Errorf("migrate: Config.Baseline %d is not a version of the source (0..%d)", c.Baseline, c.Source.Head())
	}
	if _, ok := c.Source.Step(c.Baseline); c.Baseline > 0 && !ok {
		return fmt.Errorf("migrate: Config.Baseline %d is not a version of the source", c.Baseline)
	}
	if c.LockRetries < 0 || c.MaxBatches < 0 {
		return errors.New("migrate: Config.LockRetries and MaxBatches must not be negative")
	}
	if c.LeaseTTL < 3*time.Second {
		return errors.New("migrate: Config.LeaseTTL must be at least 3s")
	}
	return nil
}

// Engine rolls the application schema out to every target of the fleet. It
// is safe for concurrent use; only one rollout (Up, Resume) runs at a time
// per catalog, across processes.
type Engine struct {
	store  *catalog.Store
	pool   *pgxpool.Pool
	config *Config
	logger *slog.Logger
	src    *Source
	leases *Leases
}

// New returns an engine over the catalog of store. The catalog must be
// migrated (catalog.Store.Migrate) to a version with the migration ledger.
func New(store *catalog.Store, cfg *Config) (*Engine, error) {
	if store == nil {
		return nil, errors.New("migrate: store is nil")
	}
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Engine{
		store:  store,
		pool:   store.Pool(),
		config: cfg,
		logger: cfg.Logger,
		src:    cfg.Source,
		leases: NewLeases(store.Pool()),
	}, nil
}

// Source returns the engine's migrations.
func (e *Engine) Source() *Source { return e.src }

// LintError is returned when pending steps have blocking lint findings.
type LintError struct {
	Findings []lint.Finding
}

func (e *LintError) Error() string {
	msg := fmt.Sprintf("%v: %d finding(s)", ErrLintFailed, len(e.Findings))
	for i, f := range e.Findings {
		if i == 5 {
			msg += fmt.Sprintf("; and %d more", len(e.Findings)-5)
			break
		}
		msg += "; " + f.String()
	}
	return msg
}

// Is makes errors.Is(err, ErrLintFailed) true.
func (e *LintError) Is(target error) bool { return target == ErrLintFailed }

// runLockKey is the catalog advisory lock held by the one running rollout.
var runLockKey = LockKey("tenantry", "rollout")

// runLock is the rollout lock, held on a dedicated catalog connection for
// the whole run: if the process dies, the connection closes and the lock
// goes with it.
type runLock struct {
	conn *pgxpool.Conn
}

// acquireRunLock takes the rollout lock. With takeover (Resume, Abort) it
// waits up to RunLockWait for a crashed engine's session to go, and
// terminates the session holding the lock when the unfinished run's
// heartbeat is older than LeaseTTL: that engine is dead (its host crashed,
// leaving a half-open connection) or has stopped itself for lack of leases.
func (e *Engine) acquireRunLock(ctx context.Context, takeover bool) (*runLock, error) {
	conn, err := e.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate: catalog: %w", err)
	}
	deadline := time.Now().Add(e.config.RunLockWait)
	for attempt := 0; ; attempt++ {
		var ok bool
		if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, runLockKey).Scan(&ok); err != nil {
			conn.Release()
			return nil, fmt.Errorf("migrate: rollout lock: %w", err)
		}
		if ok {
			return &runLock{conn: conn}, nil
		}
		if !takeover || time.Now().After(deadline) {
			conn.Release()
			return nil, ErrRunInProgress
		}
		if attempt == 0 {
			var stale bool
			err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT FROM tenantry.migration_run
WHERE state = 'running' AND heartbeat_at < now() - make_interval(secs => $1))`, e.config.LeaseTTL.Seconds()).Scan(&stale)
			if err == nil && stale {
				e.logger.WarnContext(ctx, "terminating the session of a dead rollout engine")
				_, _ = conn.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_locks
WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND ((classid::bigint << 32) | objid::bigint) = $1 AND pid <> pg_backend_pid()`, runLockKey)
			}
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			conn.Release()
			return nil, err
		}
	}
}

func (l *runLock) release() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := l.conn.Exec(ctx, `SELECT pg_advisory_unlock($1)`, runLockKey); err != nil {
		// Never hand a connection holding the lock back to the pool.
		_ = l.conn.Conn().Close(ctx)
	}
	l.conn.Release()
}
