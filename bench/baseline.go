package bench

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// baselineHandler is the hand-written single-tenant service the router is
// measured against: net/http and pgx, no tenancy at all, serving GET
// /api/v1/notes/{id} with the same SQL, the same JSON and the same round
// trips as the notes API through the router (BEGIN READ ONLY and the SELECT
// in one round trip, then COMMIT).
func baselineHandler(db *pgxpool.Pool) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/notes/{id}", func(w http.ResponseWriter, r *http.Request) {
		raw := r.PathValue("id")
		id, err := uuid.Parse(raw)
		if err != nil || id.String() != raw {
			http.Error(w, "invalid id", http.StatusBadRequest)
			return
		}
		n, err := getNote(r.Context(), db, raw)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			http.Error(w, "not found", http.StatusNotFound)
			return
		case err != nil:
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		body, err := json.Marshal(n)
		if err != nil {
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Content-Length", strconv.Itoa(len(body)+1))
		h.Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(append(body, '\n'))
	})
	return mux
}

type note struct {
	ID        string    `json:"id"`
	Title     string    `json:"title"`
	Body      string    `json:"body"`
	Version   int64     `json:"version"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

func getNote(ctx context.Context, db *pgxpool.Pool, id string) (*note, error) {
	conn, err := db.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Release()
	var b pgx.Batch
	b.Queue("begin read only")
	var n note
	b.Queue(`SELECT id::text, title, body, version, created_at, updated_at FROM notes WHERE id = $1`, id).QueryRow(func(row pgx.Row) error {
		return row.Scan(&n.ID, &n.Title, &n.Body, &n.Version, &n.CreatedAt, &n.UpdatedAt)
	})
	if err := conn.SendBatch(ctx, &b).Close(); err != nil {
		_, _ = conn.Exec(context.WithoutCancel(ctx), "rollback")
		return nil, err
	}
	if _, err := conn.Exec(ctx, "commit"); err != nil {
		return nil, err
	}
	return &n, nil
}
