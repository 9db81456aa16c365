package breakglass

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tenantry/tenantry/catalog"
	"github.com/tenantry/tenantry/router"
	"github.com/tenantry/tenantry/tenant"
)

// Mode is the access a break-glass session gets.
type Mode int

const (
	// ReadOnly runs the function in a READ ONLY transaction: PostgreSQL
	// refuses every write. The default.
	ReadOnly Mode = iota
	// ReadWrite runs it in a read-write transaction, for repairs.
	ReadWrite
)

func (m Mode) String() string {
	switch m {
	case ReadOnly:
		return "read-only"
	case ReadWrite:
		return "read-write"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// Limits of a Request.
const (
	// MinReasonLength is the shortest reason accepted, in characters after
	// trimming spaces: enough for a ticket reference and a few words.
	MinReasonLength = 15
	// MaxReasonLength is the longest reason accepted, in bytes.
	MaxReasonLength = 1000
	// MaxActorLength is the longest actor accepted, in bytes.
	MaxActorLength = 200
	// DefaultTTL bounds a session whose Request.TTL is zero.
	DefaultTTL = 5 * time.Minute
	// MaxTTL is the longest session accepted.
	MaxTTL = time.Hour
)

// Audit actions of a session. Both entries carry the tenant's ID, its slug
// as target, the actor and the reason; their detail is a Record.
const (
	// ActionBegin is appended, and committed, before any tenant data is
	// touched.
	ActionBegin = "breakglass.begin"
	// ActionEnd is appended when the session ends, however it ends.
	ActionEnd = "breakglass.end"
)

// Outcomes of a session, in the Record of its end entry.
const (
	OutcomeCommitted  = "committed"
	OutcomeRolledBack = "rolled_back"
	OutcomeScopeLost  = "scope_lost"
	OutcomePanicked   = "panicked"
)

var (
	// ErrNoReason is returned (wrapped) for a request without a reason of
	// at least MinReasonLength characters. Nothing is accessed or recorded.
	ErrNoReason = errors.New("breakglass: a reason is required")
	// ErrInvalid is returned (wrapped) for any other malformed request.
	// Nothing is accessed or recorded.
	ErrInvalid = errors.New("breakglass: invalid request")
	// ErrScopeLost is returned when the function ended the transaction it
	// was given (COMMIT, ROLLBACK), or changed its tenant, so that its later
	// statements ran outside the audited scope. The session is recorded
	// with OutcomeScopeLost; what ran outside the transaction is not undone.
	ErrScopeLost = errors.New("breakglass: the function left its audited transaction")
	// ErrAudit is returned (wrapped) when the begin entry could not be
	// appended to the audit log: the function was not run.
	ErrAudit = errors.New("breakglass: audit log unavailable")
)

// Request is one break-glass access to one tenant's data.
type Request struct {
	// Actor is who asks: the operator's identity (an admin certificate's
	// name, an SSO subject), never a shared account. Required; at most
	// MaxActorLength bytes, no control characters.
	Actor string
	// Tenant is the tenant's slug or ID. Required.
	Tenant string
	// Reason is why: an incident or ticket reference and a sentence.
	// Required: at least MinReasonLength characters after trimming spaces,
	// at most MaxReasonLength bytes, one line.
	Reason string
	// Mode is ReadOnly (the default) or ReadWrite.
	Mode Mode
	// TTL bounds the session: its context is cancelled, and the
	// transaction rolled back, when it runs out. Default DefaultTTL; at
	// most MaxTTL.
	TTL time.Duration
}

// Record is the detail of a session's audit entries (JSON in the entry's
// after-image).
type Record struct {
	// Session correlates the begin and end entries of one session.
	Session string `json:"session"`
	// Mode is "read-only" or "read-write".
	Mode string `json:"mode"`
	// TTL and ExpiresAt bound the session.
	TTL       string    `json:"ttl"`
	ExpiresAt time.Time `json:"expires_at"`
	// Outcome is one of the Outcome constants (end entry only).
	Outcome string `json:"outcome,omitempty"`
	// Error classifies a failure (end entry only): a SQLSTATE, or
	// "deadline_exceeded", "canceled", "tenant_unavailable", "error". Never
	// an error's text, which may quote tenant data.
	Error string `json:"error,omitempty"`
	// Elapsed is how long the session ran (end entry only).
	Elapsed string `json:"elapsed,omitempty"`
}

var uuidRe = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// validate checks req and returns the trimmed actor and reason and the TTL.
func (req *Request) validate() (actor, reason string, ttl time.Duration, err error) {
	actor, reason = strings.TrimSpace(req.Actor), strings.TrimSpace(req.Reason)
	switch {
	case reason == "":
		return "", "", 0, fmt.Errorf("%w: say why, with an incident or ticket reference", ErrNoReason)
	case utf8.RuneCountInString(reason) < MinReasonLength:
		return "", "", 0, fmt.Errorf("%w: the reason must be at least %d characters, with an incident or ticket reference", ErrNoReason, MinReasonLength)
	case len(reason) > MaxReasonLength:
		return "", "", 0, fmt.Errorf("%w: the reason is longer than %d bytes", ErrInvalid, MaxReasonLength)
	case !printable(reason):
		return "", "", 0, fmt.Errorf("%w: the reason must be one line of printable text", ErrInvalid)
	case actor == "":
		return "", "", 0, fmt.Errorf("%w: an actor is required", ErrInvalid)
	case len(actor) > MaxActorLength || !printable(actor):
		return "", "", 0, fmt.Errorf("%w: the actor must be at most %d bytes of printable text", ErrInvalid, MaxActorLength)
	case !tenant.IsValidSlug(req.Tenant) && !uuidRe.MatchString(req.Tenant):
		return "", "", 0, fmt.Errorf("%w: tenant must be a slug or an ID", ErrInvalid)
	case req.Mode != ReadOnly && req.Mode != ReadWrite:
		return "", "", 0, fmt.Errorf("%w: unknown mode %s", ErrInvalid, req.Mode)
	case req.TTL < 0 || req.TTL > MaxTTL:
		return "", "", 0, fmt.Errorf("%w: TTL must be between 0 (default %s) and %s", ErrInvalid, DefaultTTL, MaxTTL)
	}
	ttl = req.TTL
	if ttl == 0 {
		ttl = DefaultTTL
	}
	return actor, reason, ttl, nil
}

func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return false
		}
	}
	return true
}

// Access runs fn in a transaction scoped to one tenant, on behalf of an
// operator, on the record:
//
//  1. It refuses a request without a reason, or otherwise malformed, before
//     anything else (ErrNoReason, ErrInvalid).
//  2. It reads the tenant from the catalog (store), not from a cache.
//  3. It appends an ActionBegin entry to the catalog's audit log (who, which
//     tenant, why, when, read-only or read-write, until when) and waits for
//     its commit. If that fails, fn does not run (ErrAudit).
//  4. It runs fn through r, in the tenant's scope like any tenant
//     transaction, READ ONLY unless req.Mode is ReadWrite, under a context
//     that expires after the TTL. Before committing it checks that fn left
//     the transaction and its tenant as it found them (ErrScopeLost).
//  5. It appends an ActionEnd entry with the outcome, whether fn succeeded,
//     failed, timed out or panicked (the panic continues afterwards).
//
// It returns fn's error, or the router's (router.ErrSuspended: the router
// serves active and read-only tenants only), joined with an error of the
// end entry if that could not be written.
//
// fn gets the transaction only: it cannot reach another tenant through it,
// any more than application code can (see the router's documentation), and
// the same trust applies: fn is operator code, not input.
func Access(ctx context.Context, store *catalog.Store, r *router.Router, req Request, fn func(context.Context, router.Tx) error) (err error) {
	actor, reason, ttl, err := req.validate()
	if err != nil {
		return err
	}
	if store == nil || r == nil || fn == nil {
		return fmt.Errorf("%w: store, router and function are required", ErrInvalid)
	}
	t, err := store.Tenant(ctx, req.Tenant)
	if err != nil {
		return fmt.Errorf("breakglass: %w", err)
	}
	began := time.Now()
	rec := Record{Session: newSession(), Mode: req.Mode.String(), TTL: ttl.String(), ExpiresAt: began.Add(ttl).UTC()}
	who := catalog.Actor{Name: actor, Reason: reason}
	if err := store.AppendAudit(ctx, who, ActionBegin, t.ID, t.Slug, rec); err != nil {
		return fmt.Errorf("%w: %w", ErrAudit, err)
	}

	// From here on, the session ends on the record whatever happens.
	outcome, class := OutcomePanicked, "panic"
	defer func() {
		end := rec
		end.Outcome, end.Error, end.Elapsed = outcome, class, time.Since(began).Round(time.Millisecond).String()
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if aerr := store.AppendAudit(actx, who, ActionEnd, t.ID, t.Slug, end); aerr != nil {
			err = errors.Join(err, fmt.Errorf("breakglass: recording the end of session %s: %w", rec.Session, aerr))
		}
	}()

	sctx, cancel := context.WithTimeout(tenant.NewContext(ctx, t, "breakglass"), ttl)
	defer cancel()
	readOnly := req.Mode == ReadOnly
	err = r.TxWith(sctx, router.TxOptions{ReadOnly: readOnly}, func(ctx context.Context, tx router.Tx) error {
		if err := fn(ctx, tx); err != nil {
			return err
		}
		return checkScope(ctx, tx, t.ID, readOnly)
	})
	switch {
	case err == nil:
		outcome, class = OutcomeCommitted, ""
	case errors.Is(err, ErrScopeLost):
		outcome, class = OutcomeScopeLost, ""
	default:
		outcome, class = OutcomeRolledBack, classify(err)
	}
	return err
}

// checkScope verifies, in the transaction about to commit, that it is still
// the scoped transaction Access began: a function that ran COMMIT would
// find itself outside any transaction, with no tenant set.
func checkScope(ctx context.Context, tx router.Tx, tenantID string, readOnly bool) error {
	var ro, id string
	err := tx.QueryRow(ctx, `SELECT current_setting('transaction_read_only'), current_setting('tenantry.tenant_id', true)`).Scan(&ro, &id)
	if err != nil {
		return err
	}
	if id != tenantID || (readOnly && ro != "on") {
		return ErrScopeLost
	}
	return nil
}

// classify names err for the audit log without its text.
func classify(err error) string {
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr):
		return pgErr.Code
	case errors.Is(err, context.DeadlineExceeded):
		return "deadline_exceeded"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, router.ErrSuspended), errors.Is(err, router.ErrDeleting), errors.Is(err, router.ErrReadOnly),
		errors.Is(err, router.ErrUnknownTenant), errors.Is(err, router.ErrPlacement):
		return "tenant_unavailable"
	}
	return "error"
}

func newSession() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
