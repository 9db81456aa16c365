package blob

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tenantry/tenantry/internal/problem"
	"github.com/tenantry/tenantry/tenant"
)

// HandlerConfig configures a Handler.
type HandlerConfig struct {
	// BasePath is where the handler is mounted. Default "/api/v1/files".
	BasePath string
	// MaxUploadSize caps one upload in bytes, whatever the tenant's quota:
	// a larger Content-Length is refused with 413 before the body is read,
	// and a body without one is cut there. Default 5 GiB; -1 means no cap.
	MaxUploadSize int64
	// Logger receives one record per request that failed on the server's
	// side, carrying the tenant. Default: discard.
	Logger *slog.Logger
}

// WithDefaults returns a copy of c with defaults filled in.
func (c *HandlerConfig) WithDefaults() *HandlerConfig {
	out := HandlerConfig{}
	if c != nil {
		out = *c
	}
	if out.BasePath == "" {
		out.BasePath = "/api/v1/files"
	}
	out.BasePath = strings.TrimSuffix(out.BasePath, "/")
	if out.MaxUploadSize == 0 {
		out.MaxUploadSize = 5 << 30
	}
	if out.Logger == nil {
		out.Logger = slog.New(slog.DiscardHandler)
	}
	return &out
}

func (c *HandlerConfig) validate() error {
	if !strings.HasPrefix(c.BasePath, "/") {
		return fmt.Errorf("blob: BasePath %q must start with /", c.BasePath)
	}
	if c.MaxUploadSize < -1 {
		return errors.New("blob: MaxUploadSize must be -1 or positive")
	}
	return nil
}

// Handler serves a Store over HTTP. Mount it behind the tenant-resolution
// middleware, which puts the tenant in the request's context; the handler
// never reads a tenant from the request itself.
//
//	PUT    {base}/{key...}   store the body (streamed; Content-Type kept)   201 + JSON Info
//	GET    {base}/{key...}   stream the object                              200
//	HEAD   {base}/{key...}   the object's headers                           200
//	DELETE {base}/{key...}   delete                                         204
//	GET    {base}?prefix=&start_after=&limit=   list                        200 + JSON ListPage
//	POST   {base}/{key...}?presign=get|put&expires=SECONDS&size=BYTES      200 + JSON PresignedRequest
//
// Keys are the rest of the decoded path and go through ValidateKey. Errors
// are problem+json (internal/problem) with a stable code: invalid_key (400),
// size_mismatch (400), tenant_read_only (403), object_not_found (404),
// key_conflict (409), object_too_large (413, the request alone breaks a
// limit), too_many_requests (429, with Retry-After), quota_exceeded (507,
// the tenant's remaining space or object count), not_supported (501). The
// detail of a limit error names the limit and the figures.
type Handler struct {
	store Store
	cfg   *HandlerConfig
}

// NewHandler returns a Handler serving store.
func NewHandler(store Store, cfg *HandlerConfig) (*Handler, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if store == nil {
		return nil, errors.New("blob: nil store")
	}
	return &Handler{store: store, cfg: cfg}, nil
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := h.serve(w, r); err != nil {
		h.writeError(w, r, err)
	}
}

func (h *Handler) serve(w http.ResponseWriter, r *http.Request) error {
	rest, ok := strings.CutPrefix(r.URL.Path, h.cfg.BasePath)
	if !ok || (rest != "" && rest[0] != '/') {
		return problem.New(http.StatusNotFound, "not_found", "No such endpoint.")
	}
	if rest == "" || rest == "/" {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			return methodNotAllowed(w, "GET, HEAD")
		}
		return h.list(w, r)
	}
	key := rest[1:]
	switch r.Method {
	case http.MethodPut:
		return h.put(w, r, key)
	case http.MethodGet, http.MethodHead:
		return h.get(w, r, key)
	case http.MethodDelete:
		if err := h.store.Delete(r.Context(), key); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	case http.MethodPost:
		if r.URL.Query().Has("presign") {
			return h.presign(w, r, key)
		}
	}
	return methodNotAllowed(w, "GET, HEAD, PUT, DELETE, POST")
}

func methodNotAllowed(w http.ResponseWriter, allow string) error {
	w.Header().Set("Allow", allow)
	return problem.New(http.StatusMethodNotAllowed, "method_not_allowed", "Method not allowed here.")
}

func (h *Handler) put(w http.ResponseWriter, r *http.Request, key string) error {
	// Refuse a bad key before anything else, so no byte of the body is read.
	if err := ValidateKey(key); err != nil {
		return err
	}
	size := r.ContentLength // -1 when unknown (chunked)
	if limit := h.cfg.MaxUploadSize; limit > 0 {
		if size > limit {
			return &LimitError{Limit: LimitObjectSize, Max: limit, Requested: size}
		}
		r.Body = http.MaxBytesReader(w, r.Body, limit)
	}
	info, err := h.store.Put(r.Context(), key, r.Body, PutOptions{Size: size, ContentType: r.Header.Get("Content-Type")})
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return &LimitError{Limit: LimitObjectSize, Max: mbe.Limit, Requested: mbe.Limit + 1}
		}
		return err
	}
	if info.ETag != "" {
		w.Header().Set("ETag", info.ETag)
	}
	return writeJSON(w, http.StatusCreated, info)
}

func (h *Handler) get(w http.ResponseWriter, r *http.Request, key string) error {
	if r.Method == http.MethodHead {
		info, err := h.store.Stat(r.Context(), key)
		if err != nil {
			return err
		}
		setObjectHeaders(w, info)
		if notModified(r, info) {
			w.WriteHeader(http.StatusNotModified)
			return nil
		}
		w.WriteHeader(http.StatusOK)
		return nil
	}
	obj, err := h.store.Get(r.Context(), key)
	if err != nil {
		return err
	}
	defer obj.Body.Close()
	setObjectHeaders(w, obj.Info)
	if notModified(r, obj.Info) {
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	w.WriteHeader(http.StatusOK)
	if _, err := io.Copy(w, obj.Body); err != nil {
		// Headers are gone; the client sees a short body. Log only.
		h.log(r, "streaming an object failed", err)
	}
	return nil
}

func setObjectHeaders(w http.ResponseWriter, info Info) {
	hd := w.Header()
	hd.Set("Content-Type", ContentTypeOrDefault(info.ContentType))
	hd.Set("Content-Length", strconv.FormatInt(info.Size, 10))
	hd.Set("X-Content-Type-Options", "nosniff")
	// Objects are tenant data: never let a shared cache keep them.
	hd.Set("Cache-Control", "private, no-cache")
	if info.ETag != "" {
		hd.Set("ETag", info.ETag)
	}
	if !info.ModTime.IsZero() {
		hd.Set("Last-Modified", info.ModTime.UTC().Format(http.TimeFormat))
	}
}

func notModified(r *http.Request, info Info) bool {
	inm := r.Header.Get("If-None-Match")
	return inm != "" && info.ETag != "" && (inm == info.ETag || inm == "*")
}

func (h *Handler) list(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	opts := ListOptions{Prefix: q.Get("prefix"), StartAfter: q.Get("start_after")}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return problem.New(http.StatusBadRequest, "invalid_parameter", "limit must be a positive integer.")
		}
		opts.Limit = n
	}
	page, err := h.store.List(r.Context(), opts)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, page)
}

func (h *Handler) presign(w http.ResponseWriter, r *http.Request, key string) error {
	p, ok := h.store.(Presigner)
	if !ok {
		return ErrNotSupported
	}
	q := r.URL.Query()
	opts := PresignOptions{Method: strings.ToUpper(q.Get("presign")), Size: -1, ContentType: q.Get("content_type")}
	if opts.Method != http.MethodGet && opts.Method != http.MethodPut {
		return problem.New(http.StatusBadRequest, "invalid_parameter", "presign must be get or put.")
	}
	if s := q.Get("expires"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return problem.New(http.StatusBadRequest, "invalid_parameter", "expires must be a positive number of seconds.")
		}
		opts.Expires = time.Duration(n) * time.Second
	}
	if opts.Method == http.MethodPut {
		n, err := strconv.ParseInt(q.Get("size"), 10, 64)
		if err != nil || n < 0 {
			return problem.New(http.StatusBadRequest, "invalid_parameter", "a presigned PUT needs size, the exact upload length in bytes.")
		}
		if limit := h.cfg.MaxUploadSize; limit > 0 && n > limit {
			return &LimitError{Limit: LimitObjectSize, Max: limit, Requested: n}
		}
		opts.Size = n
	}
	req, err := p.Presign(r.Context(), key, opts)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, req)
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
	return nil
}

// ProblemFor maps a Store error to the problem the Handler answers with. It
// returns nil for errors it does not know (answered as a bare 500).
func ProblemFor(err error) *problem.Problem {
	var p *problem.Problem
	var ke *KeyError
	var le *LimitError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &p):
		return p
	case errors.As(err, &ke):
		return problem.New(http.StatusBadRequest, "invalid_key", "The object key is not allowed: "+ke.Reason+".")
	case errors.As(err, &le):
		if le.RequestTooLarge() {
			return problem.New(http.StatusRequestEntityTooLarge, "object_too_large", le.Error()+".")
		}
		return problem.New(http.StatusInsufficientStorage, "quota_exceeded", le.Error()+".")
	case errors.As(err, &mbe):
		return problem.New(http.StatusRequestEntityTooLarge, "object_too_large", fmt.Sprintf("The upload exceeds the limit of %d bytes.", mbe.Limit))
	case errors.Is(err, ErrNotFound):
		return problem.New(http.StatusNotFound, "object_not_found", "No object with this key.")
	case errors.Is(err, ErrSizeMismatch):
		return problem.New(http.StatusBadRequest, "size_mismatch", "The body length does not match Content-Length.")
	case errors.Is(err, ErrReadOnly):
		return problem.New(http.StatusForbidden, "tenant_read_only", "The tenant is read-only.")
	case errors.Is(err, ErrBusy):
		return problem.New(http.StatusTooManyRequests, "too_many_requests", "Too many requests in flight for this tenant; retry later.")
	case errors.Is(err, ErrConflict):
		return problem.New(http.StatusConflict, "key_conflict", "The key conflicts with an existing object (a key and a key under it).")
	case errors.Is(err, ErrNotSupported):
		return problem.New(http.StatusNotImplemented, "not_supported", "This storage backend does not support the operation.")
	}
	return nil
}

func (h *Handler) writeError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		return // the client went away
	}
	p := ProblemFor(err)
	if p == nil {
		h.log(r, "blob request failed", err)
		problem.WriteError(w, err)
		return
	}
	if p.Status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", "1")
	}
	problem.Write(w, p)
}

func (h *Handler) log(r *http.Request, msg string, err error) {
	id := ""
	if t, ok := tenant.FromContext(r.Context()); ok {
		id = t.ID
	}
	h.cfg.Logger.ErrorContext(r.Context(), msg, "tenant", id, "method", r.Method, "error", err)
}
