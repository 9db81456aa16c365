package server

import (
	"context"
	"log/slog"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/tenantry/tenantry/internal/problem"
	"github.com/tenantry/tenantry/tenant"
)

// maxLoggedPath caps how much of a (client-chosen) path a record carries.
const maxLoggedPath = 256

// markResolved runs inside resolution and hands the context it produced,
// which carries the tenant, back to observe's recorder, so that the
// request's record names the tenant. It finds the recorder through
// wrappers that implement Unwrap (as http.ResponseController does); behind
// one that does not, the record goes without the tenant, nothing worse.
func markResolved(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for inner := w; inner != nil; {
			if rec, ok := inner.(*recorder); ok {
				rec.ctx = r.Context()
				break
			}
			u, ok := inner.(interface{ Unwrap() http.ResponseWriter })
			if !ok {
				break
			}
			inner = u.Unwrap()
		}
		next.ServeHTTP(w, r)
	})
}

// observe logs one record per request, with the tenant when one was
// resolved, and turns a handler panic into a logged 500 problem.
func (s *Server) observe(listener string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		began := time.Now()
		method, path := r.Method, r.URL.Path
		if len(path) > maxLoggedPath {
			path = path[:maxLoggedPath] + "..."
		}
		rec := &recorder{ResponseWriter: w}
		defer func() {
			ctx := r.Context()
			if rec.ctx != nil {
				ctx = rec.ctx
			}
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler { //nolint:errorlint // sentinel compared as net/http does
					panic(v)
				}
				s.logger.ErrorContext(ctx, "handler panicked", "panic", v, "stack", string(debug.Stack()))
				if !rec.wroteHeader {
					problem.Write(rec, errInternal)
				}
			}
			if rec.status == 0 {
				rec.status = http.StatusOK
			}
			level := slog.LevelInfo
			switch {
			case rec.status >= 500:
				level = slog.LevelWarn
			case path == "/healthz" || path == "/readyz":
				level = slog.LevelDebug
			}
			attrs := []slog.Attr{
				slog.String("listener", listener),
				slog.String("method", method),
				slog.String("path", path),
				slog.Int("status", rec.status),
				slog.Int64("bytes", rec.bytes),
				slog.Duration("duration", time.Since(began)),
				slog.String("remote", r.RemoteAddr),
			}
			if via := tenant.ResolvedVia(ctx); via != "" {
				attrs = append(attrs, slog.String("resolved_by", via))
			}
			s.logger.LogAttrs(ctx, level, "request", attrs...)
		}()
		next.ServeHTTP(rec, r)
	})
}

// recorder remembers the status and size of a response, and the context
// resolution produced.
type recorder struct {
	http.ResponseWriter
	ctx         context.Context // set by markResolved
	status      int
	bytes       int64
	wroteHeader bool
}

func (w *recorder) WriteHeader(code int) {
	if !w.wroteHeader && code >= 200 {
		w.status, w.wroteHeader = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recorder) Write(b []byte) (int, error) {
	if !w.wroteHeader {
		w.status, w.wroteHeader = http.StatusOK, true
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// Flush lets streaming handlers flush through the recorder.
func (w *recorder) Flush() {
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Unwrap gives http.ResponseController the underlying writer.
func (w *recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }
