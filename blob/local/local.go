package local

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/tenantry/tenantry/blob"
)

// File-name suffixes. An object "a/b" is stored as the file "a.dir/b.obj",
// so the object "a" ("a.obj") and the directory holding "a/b" ("a.dir")
// never collide, as S3 allows both. Temporary files end in ".tmp". The three
// suffixes end in different letters, so no key maps onto another's name.
const (
	objSuffix = ".obj"
	dirSuffix = ".dir"
	tmpSuffix = ".tmp"
)

// headerSize is the fixed header at the start of every object file; it holds
// the metadata (content type, ETag) so that data and metadata are renamed
// into place in one atomic step.
const headerSize = 512

var headerMagic = []byte("TNTBLOB1")

type header struct {
	ContentType string `json:"ct"`
	ETag        string `json:"etag"`
}

// Config configures a local Store.
type Config struct {
	// NoSync skips fsync of object files and their directories. Default
	// false: a Put that returned survives a crash. Tests and benchmarks on
	// throwaway directories may set it.
	NoSync bool
	// SyncEvery flushes an object being written to disk every SyncEvery
	// bytes, so a large upload reaches the disk steadily instead of in one
	// burst at its end, which would stall every other writer's fsync behind
	// it. Ignored with NoSync. Default 4 MiB.
	SyncEvery int64
	// DirMode is the permission of directories it creates. Default 0o750.
	DirMode fs.FileMode
	// FileMode is the permission of object files. Default 0o640.
	FileMode fs.FileMode
}

// WithDefaults returns a copy of c with defaults filled in; c may be nil.
func (c *Config) WithDefaults() *Config {
	out := Config{}
	if c != nil {
		out = *c
	}
	if out.DirMode == 0 {
		out.DirMode = 0o750
	}
	if out.SyncEvery == 0 {
		out.SyncEvery = 4 << 20
	}
	if out.FileMode == 0 {
		out.FileMode = 0o640
	}
	return &out
}

// Store keeps objects in a directory. It implements blob.Store.
type Store struct {
	root *os.Root
	cfg  *Config
}

var _ blob.Store = (*Store)(nil)

// New opens (creating it if needed) the directory dir as a Store. All file
// access goes through an os.Root on dir, and each request through an os.Root
// on the tenant's own directory, so no key, symlink or ".." can reach a file
// outside it.
func New(dir string, cfg *Config) (*Store, error) {
	cfg = cfg.WithDefaults()
	if dir == "" {
		return nil, errors.New("local: empty directory")
	}
	if err := os.MkdirAll(dir, cfg.DirMode); err != nil {
		return nil, fmt.Errorf("local: create %s: %w", dir, err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("local: open %s: %w", dir, err)
	}
	return &Store{root: root, cfg: cfg}, nil
}

// Close releases the directory.
func (s *Store) Close() error { return s.root.Close() }

// tenantRoot opens the tenant's directory "tenants/<id>" as its own root,
// creating it when create is set. A missing directory without create is
// reported as fs.ErrNotExist.
func (s *Store) tenantRoot(prefix string, create bool) (*os.Root, error) {
	dir := strings.TrimSuffix(prefix, "/")
	if create {
		if err := s.root.MkdirAll(dir, s.cfg.DirMode); err != nil {
			return nil, fmt.Errorf("local: create tenant directory: %w", err)
		}
	}
	r, err := s.root.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	return r, nil
}

// objectPath maps a validated key to its file path inside the tenant root.
func objectPath(key string) string {
	segs := strings.Split(key, "/")
	for i := range segs[:len(segs)-1] {
		segs[i] += dirSuffix
	}
	segs[len(segs)-1] += objSuffix
	return strings.Join(segs, "/")
}

// dirPath maps the complete segments of a prefix to a directory path.
func dirPath(segs []string) string {
	if len(segs) == 0 {
		return "."
	}
	out := make([]string, len(segs))
	for i, s := range segs {
		out[i] = s + dirSuffix
	}
	return strings.Join(out, "/")
}

// Put implements blob.Store: it streams r into a temporary file next to the
// target, fsyncs it, and renames it into place.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, opts blob.PutOptions) (blob.Info, error) {
	_, prefix, err := blob.ScopeWrite(ctx)
	if err != nil {
		return blob.Info{}, err
	}
	if err := blob.ValidateKey(key); err != nil {
		return blob.Info{}, err
	}
	tr, err := s.tenantRoot(prefix, true)
	if err != nil {
		return blob.Info{}, err
	}
	defer tr.Close()

	name := objectPath(key)
	dir := path.Dir(name)
	var f *os.File
	var tmp string
	// A concurrent Delete may remove the (empty) directory between MkdirAll
	// and the create; try again a few times.
	for attempt := 0; ; attempt++ {
		if dir != "." {
			if err := tr.MkdirAll(dir, s.cfg.DirMode); err != nil {
				return blob.Info{}, mapPathErr(err)
			}
		}
		tmp = path.Join(dir, randomName()+tmpSuffix)
		f, err = tr.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, s.cfg.FileMode)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrNotExist) || attempt == 3 {
			return blob.Info{}, mapPathErr(err)
		}
	}
	committed := false
	defer func() {
		if !committed {
			f.Close()
			_ = tr.Remove(tmp)
		}
	}()

	h := sha256.New()
	n, err := s.writeBody(ctx, f, h, r)
	if err != nil {
		return blob.Info{}, err
	}
	if opts.Size >= 0 && n != opts.Size {
		return blob.Info{}, blob.ErrSizeMismatch
	}
	hdr := header{ContentType: blob.ContentTypeOrDefault(opts.ContentType), ETag: `"` + hex.EncodeToString(h.Sum(nil)[:16]) + `"`}
	if err := writeHeader(f, hdr); err != nil {
		return blob.Info{}, err
	}
	if !s.cfg.NoSync {
		if err := f.Sync(); err != nil {
			return blob.Info{}, fmt.Errorf("local: sync: %w", err)
		}
	}
	fi, err := f.Stat()
	if err != nil {
		return blob.Info{}, err
	}
	if err := f.Close(); err != nil {
		return blob.Info{}, fmt.Errorf("local: close: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return blob.Info{}, err
	}
	if err := tr.Rename(tmp, name); err != nil {
		return blob.Info{}, mapPathErr(err)
	}
	committed = true
	if !s.cfg.NoSync {
		syncDir(tr, dir)
	}
	return blob.Info{Key: key, Size: n, ContentType: hdr.ContentType, ETag: hdr.ETag, ModTime: fi.ModTime()}, nil
}

// writeBody reserves the header and copies r after it, checking ctx between
// chunks so that a cancelled request stops writing.
func (s *Store) writeBody(ctx context.Context, f *os.File, h hash.Hash, r io.Reader) (int64, error) {
	if _, err := f.Write(make([]byte, headerSize)); err != nil {
		return 0, err
	}
	buf := make([]byte, 256<<10)
	var n, unsynced int64
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		m, rerr := r.Read(buf)
		if m > 0 {
			if _, err := f.Write(buf[:m]); err != nil {
				return n, fmt.Errorf("local: write: %w", err)
			}
			h.Write(buf[:m])
			n += int64(m)
			unsynced += int64(m)
			if !s.cfg.NoSync && unsynced >= s.cfg.SyncEvery {
				if err := f.Sync(); err != nil {
					return n, fmt.Errorf("local: sync: %w", err)
				}
				unsynced = 0
			}
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			return n, rerr
		}
	}
}

func writeHeader(f *os.File, h header) error {
	js, err := json.Marshal(h)
	if err != nil {
		return err
	}
	buf := make([]byte, headerSize)
	copy(buf, headerMagic)
	if len(headerMagic)+len(js) > headerSize {
		return errors.New("local: metadata too long")
	}
	copy(buf[len(headerMagic):], js)
	_, err = f.WriteAt(buf, 0)
	return err
}

func readHeader(f *os.File) (header, error) {
	buf := make([]byte, headerSize)
	if _, err := f.ReadAt(buf, 0); err != nil {
		return header{}, fmt.Errorf("local: read header: %w", err)
	}
	if string(buf[:len(headerMagic)]) != string(headerMagic) {
		return header{}, errors.New("local: not an object file")
	}
	js := buf[len(headerMagic):]
	if i := slices.Index(js, 0); i >= 0 {
		js = js[:i]
	}
	var h header
	if err := json.Unmarshal(js, &h); err != nil {
		return header{}, fmt.Errorf("local: read header: %w", err)
	}
	return h, nil
}

// open opens the object file for key in the tenant of ctx.
func (s *Store) open(ctx context.Context, key string) (*os.File, blob.Info, error) {
	_, prefix, err := blob.Scope(ctx)
	if err != nil {
		return nil, blob.Info{}, err
	}
	if err := blob.ValidateKey(key); err != nil {
		return nil, blob.Info{}, err
	}
	tr, err := s.tenantRoot(prefix, false)
	if err != nil {
		return nil, blob.Info{}, mapPathErr(err)
	}
	defer tr.Close()
	f, err := tr.Open(objectPath(key))
	if err != nil {
		return nil, blob.Info{}, mapPathErr(err)
	}
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() || fi.Size() < headerSize {
		f.Close()
		return nil, blob.Info{}, blob.ErrNotFound
	}
	h, err := readHeader(f)
	if err != nil {
		f.Close()
		return nil, blob.Info{}, err
	}
	return f, blob.Info{Key: key, Size: fi.Size() - headerSize, ContentType: h.ContentType, ETag: h.ETag, ModTime: fi.ModTime()}, nil
}

// Get implements blob.Store.
func (s *Store) Get(ctx context.Context, key string) (*blob.Object, error) {
	f, info, err := s.open(ctx, key)
	if err != nil {
		return nil, err
	}
	return &blob.Object{Info: info, Body: &fileBody{Reader: io.NewSectionReader(f, headerSize, info.Size), f: f}}, nil
}

type fileBody struct {
	io.Reader
	f *os.File
}

func (b *fileBody) Close() error { return b.f.Close() }

// Stat implements blob.Store.
func (s *Store) Stat(ctx context.Context, key string) (blob.Info, error) {
	f, info, err := s.open(ctx, key)
	if err != nil {
		return blob.Info{}, err
	}
	f.Close()
	return info, nil
}

// Delete implements blob.Store. It also removes directories left empty.
func (s *Store) Delete(ctx context.Context, key string) error {
	_, prefix, err := blob.ScopeWrite(ctx)
	if err != nil {
		return err
	}
	if err := blob.ValidateKey(key); err != nil {
		return err
	}
	tr, err := s.tenantRoot(prefix, false)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer tr.Close()
	name := objectPath(key)
	if fi, err := tr.Lstat(name); err != nil || !fi.Mode().IsRegular() {
		return nil // missing, or not something Put made
	}
	if err := tr.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return mapPathErr(err)
	}
	for dir := path.Dir(name); dir != "."; dir = path.Dir(dir) {
		if tr.Remove(dir) != nil { // not empty, or gone: stop
			break
		}
	}
	if !s.cfg.NoSync {
		syncDir(tr, path.Dir(name))
	}
	return nil
}

// List implements blob.Store. It walks the directory of the prefix's
// complete segments and sorts what it finds, so a page costs time in
// proportion to the objects under that directory: fine for the embedded
// default, use blob/s3 for large tenants.
func (s *Store) List(ctx context.Context, opts blob.ListOptions) (*blob.ListPage, error) {
	_, prefix, err := blob.Scope(ctx)
	if err != nil {
		return nil, err
	}
	if err := blob.ValidatePrefix(opts.Prefix); err != nil {
		return nil, err
	}
	if opts.StartAfter != "" {
		if err := blob.ValidatePrefix(opts.StartAfter); err != nil {
			return nil, err
		}
	}
	limit := blob.ClampLimit(opts.Limit)
	page := &blob.ListPage{Objects: []blob.Info{}}
	tr, err := s.tenantRoot(prefix, false)
	if errors.Is(err, fs.ErrNotExist) {
		return page, nil
	}
	if err != nil {
		return nil, err
	}
	defer tr.Close()

	segs := strings.Split(opts.Prefix, "/")
	start := dirPath(segs[:len(segs)-1])
	fsys := tr.FS()
	var keys []string
	err = fs.WalkDir(fsys, start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == start && errors.Is(err, fs.ErrNotExist) {
				return fs.SkipAll
			}
			return err
		}
		if d.IsDir() {
			if p != start && !strings.HasSuffix(d.Name(), dirSuffix) {
				return fs.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || !strings.HasSuffix(p, objSuffix) {
			return nil // temporary files, symlinks, strays
		}
		k, ok := keyOf(p)
		if ok && strings.HasPrefix(k, opts.Prefix) && k > opts.StartAfter {
			keys = append(keys, k)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("local: list: %w", err)
	}
	slices.Sort(keys)
	if len(keys) > limit {
		keys = keys[:limit]
		page.Next = keys[limit-1]
	}
	for _, k := range keys {
		f, err := tr.Open(objectPath(k))
		if err != nil {
			continue // deleted meanwhile
		}
		fi, err := f.Stat()
		var h header
		if err == nil {
			h, err = readHeader(f)
		}
		f.Close()
		if err != nil {
			continue
		}
		page.Objects = append(page.Objects, blob.Info{Key: k, Size: fi.Size() - headerSize, ContentType: h.ContentType, ETag: h.ETag, ModTime: fi.ModTime()})
	}
	return page, nil
}

// keyOf maps a file path inside the tenant root back to its key.
func keyOf(p string) (string, bool) {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		suf := dirSuffix
		if i == len(segs)-1 {
			suf = objSuffix
		}
		if !strings.HasSuffix(s, suf) {
			return "", false
		}
		segs[i] = strings.TrimSuffix(s, suf)
	}
	k := strings.Join(segs, "/")
	return k, blob.ValidateKey(k) == nil
}

func mapPathErr(err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
		return blob.ErrNotFound
	case errors.Is(err, syscall.ENAMETOOLONG):
		return &blob.KeyError{Reason: "too long for the file system"}
	}
	var pe *fs.PathError
	if errors.As(err, &pe) && strings.Contains(pe.Err.Error(), "escapes") {
		// os.Root refused a path that leaves the tenant's directory (a
		// planted symlink): behave as if the object did not exist.
		return blob.ErrNotFound
	}
	return fmt.Errorf("local: %w", err)
}

func syncDir(r *os.Root, dir string) {
	if d, err := r.Open(dir); err == nil {
		_ = d.Sync() // best effort: the file itself was synced
		d.Close()
	}
}

func randomName() string {
	var b [12]byte
	rand.Read(b[:])
	return "." + hex.EncodeToString(b[:]) + fmt.Sprintf("-%x", time.Now().UnixNano()&0xffff)
}
