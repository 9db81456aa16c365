package notes

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tenantry/tenantry/catalog"
	"github.com/tenantry/tenantry/internal/problem"
	"github.com/tenantry/tenantry/router"
	"github.com/tenantry/tenantry/tenant"
)

// Router runs tenant-scoped transactions; *router.Router implements it.
type Router interface {
	Tx(ctx context.Context, fn func(context.Context, router.Tx) error) error
	ReadTx(ctx context.Context, fn func(context.Context, router.Tx) error) error
}

// Config configures the notes API.
type Config struct {
	// Logger receives a record for every failed request (Error for 5xx,
	// Debug otherwise), with "tenant". Default: discard.
	Logger *slog.Logger
	// MaxBodyBytes caps a request body. Default 64 KiB.
	MaxBodyBytes int64
	// DefaultLimit is the page size of a list without ?limit. Default 20.
	DefaultLimit int
	// MaxLimit is the largest ?limit accepted. Default 100.
	MaxLimit int
}

// WithDefaults returns a copy of c with defaults filled in. c may be nil.
func (c *Config) WithDefaults() *Config {
	out := Config{}
	if c != nil {
		out = *c
	}
	if out.Logger == nil {
		out.Logger = slog.New(slog.DiscardHandler)
	}
	if out.MaxBodyBytes == 0 {
		out.MaxBodyBytes = 64 << 10
	}
	if out.DefaultLimit == 0 {
		out.DefaultLimit = 20
	}
	if out.MaxLimit == 0 {
		out.MaxLimit = 100
	}
	return &out
}

func (c *Config) validate() error {
	if c.MaxBodyBytes < 0 || c.DefaultLimit < 0 || c.MaxLimit < 0 {
		return errors.New("notes: limits must not be negative")
	}
	if c.DefaultLimit > c.MaxLimit {
		return errors.New("notes: DefaultLimit exceeds MaxLimit")
	}
	return nil
}

// API serves the notes API. It is an http.Handler for the paths under
// /api/v1/notes and must run behind the tenant resolution middleware.
type API struct {
	r      Router
	cfg    *Config
	logger *slog.Logger
	mux    *http.ServeMux
}

// New returns the notes API over r.
func New(r Router, cfg *Config) (*API, error) {
	if r == nil {
		return nil, errors.New("notes: router is nil")
	}
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	a := &API{r: r, cfg: cfg, logger: cfg.Logger, mux: http.NewServeMux()}
	a.handle("GET /api/v1/notes", a.list)
	a.handle("POST /api/v1/notes", a.create)
	a.handle("GET /api/v1/notes/{id}", a.get)
	a.handle("PUT /api/v1/notes/{id}", a.update)
	a.handle("DELETE /api/v1/notes/{id}", a.delete)
	a.mux.Handle("/api/v1/notes", methodNotAllowed("GET, POST"))
	a.mux.Handle("/api/v1/notes/{id}", methodNotAllowed("GET, PUT, DELETE"))
	a.mux.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		problem.Write(w, errNoRoute)
	}))
	return a, nil
}

// Handler returns the notes API over r with the default configuration: the
// handler `tenantry serve` mounts behind tenant resolution.
func Handler(r Router) http.Handler {
	a, err := New(r, nil)
	if err != nil {
		panic(err) // only a nil router
	}
	return a
}

func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.mux.ServeHTTP(w, r) }

func (a *API) handle(pattern string, h func(http.ResponseWriter, *http.Request) error) {
	a.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			a.fail(w, r, err)
		}
	})
}

func methodNotAllowed(allow string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		problem.Write(w, errMethod)
	})
}

// Problems of the notes API. Codes are stable; clients branch on them.
var (
	errNoRoute       = problem.New(http.StatusNotFound, "not_found", "no such resource")
	errMethod        = problem.New(http.StatusMethodNotAllowed, "method_not_allowed", "method not allowed on this resource")
	errNotFound      = problem.New(http.StatusNotFound, "note_not_found", "no note with this id")
	errInvalidID     = problem.New(http.StatusBadRequest, "invalid_note_id", "a note id is a UUID")
	errInvalidJSON   = problem.New(http.StatusBadRequest, "invalid_json", "the body must be one JSON object with the fields title, body and, on update, version")
	errInvalidQuery  = problem.New(http.StatusBadRequest, "invalid_query", "")
	errMediaType     = problem.New(http.StatusUnsupportedMediaType, "unsupported_media_type", "send Content-Type: application/json")
	errTooLarge      = problem.New(http.StatusRequestEntityTooLarge, "body_too_large", "the request body is too large")
	errInvalidNote   = problem.New(http.StatusUnprocessableEntity, "invalid_note", "")
	errConflict      = problem.New(http.StatusConflict, "version_conflict", "the note changed since it was read; read it again")
	errNoTenant      = problem.New(http.StatusInternalServerError, problem.CodeInternal, "")
	errUnknownTenant = problem.New(http.StatusNotFound, "tenant_unknown", "no such tenant")
	errSuspended     = problem.New(http.StatusLocked, "tenant_suspended", "the tenant is suspended")
	errReadOnly      = problem.New(http.StatusLocked, "tenant_read_only", "the tenant is read-only")
	errDeleting      = problem.New(http.StatusGone, "tenant_deleting", "the tenant is being deleted")
	errUnavailable   = problem.New(http.StatusServiceUnavailable, "catalog_unavailable", "try again shortly")
)

// fail writes err as a problem. Router and database errors become fixed
// problems; their text goes to the log only.
func (a *API) fail(w http.ResponseWriter, r *http.Request, err error) {
	var p *problem.Problem
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &p):
	case errors.Is(err, router.ErrNoTenant):
		// The handler is mounted without tenant resolution in front.
		p = errNoTenant
	case errors.Is(err, router.ErrUnknownTenant):
		p = errUnknownTenant
	case errors.Is(err, router.ErrSuspended):
		p = errSuspended
	case errors.Is(err, router.ErrReadOnly):
		p = errReadOnly
	case errors.Is(err, router.ErrDeleting):
		p = errDeleting
	case errors.Is(err, catalog.ErrUnavailable):
		w.Header().Set("Retry-After", "1")
		p = errUnavailable
	case errors.As(err, &pgErr) && pgErr.Code == "23514": // check_violation
		p = errInvalidNote.WithDetail("the note breaks a constraint")
	case r.Context().Err() != nil:
		// The client went away; nobody reads the answer.
		a.logger.DebugContext(r.Context(), "request cancelled", tenantAttr(r), "error", err)
		return
	default:
		p = problem.New(http.StatusInternalServerError, problem.CodeInternal, "")
	}
	level := slog.LevelDebug
	if p.Status >= 500 {
		level = slog.LevelError
	}
	a.logger.LogAttrs(r.Context(), level, "notes request failed", tenantAttr(r),
		slog.String("method", r.Method), slog.String("path", r.URL.Path),
		slog.Int("status", p.Status), slog.String("code", p.Code), slog.Any("error", err))
	problem.Write(w, p)
}

func tenantAttr(r *http.Request) slog.Attr {
	if t, ok := tenant.FromContext(r.Context()); ok {
		return slog.String("tenant", t.Slug)
	}
	return slog.Attr{}
}

const noteColumns = `id::text, title, body, version, created_at, updated_at`

func scanNote(row pgx.Row) (*Note, error) {
	var n Note
	if err := row.Scan(&n.ID, &n.Title, &n.Body, &n.Version, &n.CreatedAt, &n.UpdatedAt); err != nil {
		return nil, err
	}
	return &n, nil
}

// noteID returns the {id} path value if it is a UUID in canonical form
// (lower case, hyphenated): every note has exactly one URL.
func noteID(r *http.Request) (string, error) {
	id, ok := canonicalUUID(r.PathValue("id"))
	if !ok {
		return "", errInvalidID
	}
	return id, nil
}

func canonicalUUID(s string) (string, bool) {
	id, err := uuid.Parse(s)
	if err != nil || id.String() != s {
		return "", false
	}
	return s, true
}

// listPage is the answer of GET /api/v1/notes.
type listPage struct {
	Notes []*Note `json:"notes"`
	// Next is the ?after value of the next page, "" on the last page.
	Next string `json:"next,omitempty"`
}

func (a *API) list(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	limit := a.cfg.DefaultLimit
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > a.cfg.MaxLimit {
			return errInvalidQuery.WithDetail("limit must be an integer from 1 to " + strconv.Itoa(a.cfg.MaxLimit))
		}
		limit = n
	}
	after := q.Get("after")
	if after != "" {
		if _, ok := canonicalUUID(after); !ok {
			return errInvalidQuery.WithDetail("after must be a note id")
		}
	}
	page := listPage{Notes: []*Note{}}
	err := a.r.ReadTx(r.Context(), func(ctx context.Context, tx router.Tx) error {
		var rows pgx.Rows
		var err error
		// Note IDs are UUIDv7, so their order is their creation order.
		if after == "" {
			rows, err = tx.Query(ctx, `SELECT `+noteColumns+` FROM notes ORDER BY id LIMIT $1`, limit+1)
		} else {
			rows, err = tx.Query(ctx, `SELECT `+noteColumns+` FROM notes WHERE id > $1 ORDER BY id LIMIT $2`, after, limit+1)
		}
		if err != nil {
			return err
		}
		page.Notes, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (*Note, error) { return scanNote(row) })
		return err
	})
	if err != nil {
		return err
	}
	if len(page.Notes) > limit {
		page.Notes = page.Notes[:limit]
		page.Next = page.Notes[limit-1].ID
	}
	return writeJSON(w, http.StatusOK, page)
}

func (a *API) get(w http.ResponseWriter, r *http.Request) error {
	id, err := noteID(r)
	if err != nil {
		return err
	}
	var n *Note
	err = a.r.ReadTx(r.Context(), func(ctx context.Context, tx router.Tx) error {
		n, err = scanNote(tx.QueryRow(ctx, `SELECT `+noteColumns+` FROM notes WHERE id = $1`, id))
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return errNotFound
	}
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, n)
}

func (a *API) create(w http.ResponseWriter, r *http.Request) error {
	in, err := a.decode(w, r)
	if err != nil {
		return err
	}
	if in.Version != nil {
		return errInvalidNote.WithDetail("version is not accepted on create")
	}
	id, err := uuid.NewV7()
	if err != nil {
		return err
	}
	var n *Note
	err = a.r.Tx(r.Context(), func(ctx context.Context, tx router.Tx) error {
		n, err = scanNote(tx.QueryRow(ctx, `INSERT INTO notes (id, title, body) VALUES ($1, $2, $3) RETURNING `+noteColumns,
			id.String(), *in.Title, *in.Body))
		return err
	})
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/notes/"+n.ID)
	return writeJSON(w, http.StatusCreated, n)
}

func (a *API) update(w http.ResponseWriter, r *http.Request) error {
	id, err := noteID(r)
	if err != nil {
		return err
	}
	in, err := a.decode(w, r)
	if err != nil {
		return err
	}
	var n *Note
	err = a.r.Tx(r.Context(), func(ctx context.Context, tx router.Tx) error {
		n, err = scanNote(tx.QueryRow(ctx, `UPDATE notes SET title = $2, body = $3, version = version + 1, updated_at = now()
WHERE id = $1 AND ($4::bigint IS NULL OR version = $4) RETURNING `+noteColumns, id, *in.Title, *in.Body, in.Version))
		if errors.Is(err, pgx.ErrNoRows) && in.Version != nil {
			var exists bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT FROM notes WHERE id = $1)`, id).Scan(&exists); err != nil {
				return err
			}
			if exists {
				return errConflict
			}
		}
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return errNotFound
	}
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, n)
}

func (a *API) delete(w http.ResponseWriter, r *http.Request) error {
	id, err := noteID(r)
	if err != nil {
		return err
	}
	var deleted int64
	err = a.r.Tx(r.Context(), func(ctx context.Context, tx router.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM notes WHERE id = $1`, id)
		deleted = tag.RowsAffected()
		return err
	})
	if err != nil {
		return err
	}
	if deleted == 0 {
		return errNotFound
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// decode reads and validates a note from the JSON body.
func (a *API) decode(w http.ResponseWriter, r *http.Request) (*input, error) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return nil, errMediaType
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, a.cfg.MaxBodyBytes))
	dec.DisallowUnknownFields()
	var in input
	if err := dec.Decode(&in); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, errTooLarge
		}
		return nil, errInvalidJSON
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errInvalidJSON
	}
	if fe := in.validate(); fe != nil {
		return nil, errInvalidNote.WithDetail(fe.Error())
	}
	return &in, nil
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)+1))
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
	return nil
}
