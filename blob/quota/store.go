package quota

import (
	"context"
	"errors"
	"io"

	"github.com/tenantry/tenantry/blob"
)

// Store wraps a blob.Store and enforces the tenant's quota on every write,
// before the bytes are accepted: an upload with a declared size reserves it
// (net of the object it replaces) before reading a byte; one without reserves
// Config.GrowStep at a time as bytes arrive and fails at the limit, and the
// inner store then discards what it read. Failures are *blob.LimitError. It
// implements blob.Store, and blob.Presigner when the inner store does
// (presigned PUTs are checked against the quota when signed, and counted by
// Reconcile, since their bytes bypass Tenantry).
//
// Usage is kept per write: an overwrite racing another write or delete of
// the same key can leave usage off by that object until Reconcile.
type Store struct {
	inner blob.Store
	q     *Quota
}

// Wrap returns inner with q enforced.
func Wrap(inner blob.Store, q *Quota) *Store { return &Store{inner: inner, q: q} }

// Put implements blob.Store.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, opts blob.PutOptions) (blob.Info, error) {
	t, _, err := blob.ScopeWrite(ctx)
	if err != nil {
		return blob.Info{}, err
	}
	if err := blob.ValidateKey(key); err != nil {
		return blob.Info{}, err
	}
	var oldSize int64
	existed := false
	if info, err := s.inner.Stat(ctx, key); err == nil {
		oldSize, existed = info.Size, true
	} else if !errors.Is(err, blob.ErrNotFound) {
		return blob.Info{}, err
	}
	newObjects := int64(1)
	if existed {
		newObjects = 0
	}
	var res *Reservation
	if opts.Size >= 0 {
		res, err = s.q.Reserve(ctx, t, max(opts.Size-oldSize, 0), newObjects)
		if err == nil && res.limits.MaxObjectSize > 0 && opts.Size > res.limits.MaxObjectSize {
			_ = res.Release(context.WithoutCancel(ctx)) // if it fails, it expires
			return blob.Info{}, &blob.LimitError{Limit: blob.LimitObjectSize, Max: res.limits.MaxObjectSize, Requested: opts.Size}
		}
	} else {
		res, err = s.q.Reserve(ctx, t, s.q.cfg.GrowStep, newObjects)
	}
	if err != nil {
		return blob.Info{}, err
	}
	cr := &countingReader{ctx: ctx, r: r, res: res, step: s.q.cfg.GrowStep, sized: opts.Size >= 0}
	info, err := s.inner.Put(ctx, key, cr, opts)
	bg := context.WithoutCancel(ctx)
	if err != nil {
		_ = res.Release(bg) // if it fails, it expires
		return blob.Info{}, err
	}
	if err := res.Commit(bg, info.Size-oldSize, newObjects); err != nil {
		return info, err
	}
	return info, nil
}

// countingReader counts an upload's bytes; for an upload without a declared
// size it grows the reservation ahead of them and fails at the limit.
type countingReader struct {
	ctx   context.Context
	r     io.Reader
	res   *Reservation
	step  int64
	sized bool
	n     int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.sized {
		return n, err
	}
	if l := c.res.limits.MaxObjectSize; l > 0 && c.n > l {
		return 0, &blob.LimitError{Limit: blob.LimitObjectSize, Max: l, Requested: c.n}
	}
	for c.n > c.res.bytes {
		if gerr := c.res.Grow(c.ctx, c.step); gerr != nil {
			return 0, gerr
		}
	}
	return n, err
}

// Get implements blob.Store.
func (s *Store) Get(ctx context.Context, key string) (*blob.Object, error) {
	return s.inner.Get(ctx, key)
}

// Stat implements blob.Store.
func (s *Store) Stat(ctx context.Context, key string) (blob.Info, error) {
	return s.inner.Stat(ctx, key)
}

// List implements blob.Store.
func (s *Store) List(ctx context.Context, opts blob.ListOptions) (*blob.ListPage, error) {
	return s.inner.List(ctx, opts)
}

// Delete implements blob.Store and gives the object's space back.
func (s *Store) Delete(ctx context.Context, key string) error {
	t, _, err := blob.ScopeWrite(ctx)
	if err != nil {
		return err
	}
	info, err := s.inner.Stat(ctx, key)
	if errors.Is(err, blob.ErrNotFound) {
		return s.inner.Delete(ctx, key)
	}
	if err != nil {
		return err
	}
	if err := s.inner.Delete(ctx, key); err != nil {
		return err
	}
	return s.q.Record(context.WithoutCancel(ctx), t.ID, -info.Size, -1)
}

// Presign implements blob.Presigner. A PUT URL is refused when its size
// would break the quota now.
func (s *Store) Presign(ctx context.Context, key string, opts blob.PresignOptions) (*blob.PresignedRequest, error) {
	p, ok := s.inner.(blob.Presigner)
	if !ok {
		return nil, blob.ErrNotSupported
	}
	if opts.Method == "PUT" {
		t, _, err := blob.ScopeWrite(ctx)
		if err != nil {
			return nil, err
		}
		res, err := s.q.Reserve(ctx, t, opts.Size, 1)
		if err != nil {
			return nil, err
		}
		defer func() { _ = res.Release(context.WithoutCancel(ctx)) }()
		if l := res.limits.MaxObjectSize; l > 0 && opts.Size > l {
			return nil, &blob.LimitError{Limit: blob.LimitObjectSize, Max: l, Requested: opts.Size}
		}
	}
	return p.Presign(ctx, key, opts)
}
