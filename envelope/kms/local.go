package kms

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

const (
	kekSize      = 32 // AES-256
	localVersion = 1
	kekSuffix    = ".kek"
	tombSuffix   = ".destroyed"
)

// Local is a KMS that keeps one 256-bit KEK per tenant in a file
// <dir>/<tenantID>.kek (mode 0600, in a directory of mode 0700) and wraps
// with AES-256-GCM, the tenant ID bound as additional data. Destroy removes
// the file and leaves a tombstone <tenantID>.destroyed so that the tenant's
// KEK is never silently recreated. Several processes may share the
// directory.
type Local struct {
	dir string
}

// NewLocal returns a Local KMS over dir, creating it with mode 0700. It
// refuses a directory that group or others can access.
func NewLocal(dir string) (*Local, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("kms: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("kms: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("kms: %s is not a directory", dir)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("kms: %s has mode %v; key directories must be 0700", dir, fi.Mode().Perm())
	}
	return &Local{dir: dir}, nil
}

// Wrap implements KMS.
func (l *Local) Wrap(_ context.Context, tenantID string, dek []byte) ([]byte, error) {
	if err := ValidateTenantID(tenantID); err != nil {
		return nil, err
	}
	if len(dek) == 0 {
		return nil, errors.New("kms: empty data key")
	}
	kek, err := l.kek(tenantID, true)
	if err != nil {
		return nil, err
	}
	aead, err := newGCM(kek)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 1+aead.NonceSize(), 1+aead.NonceSize()+len(dek)+aead.Overhead())
	out[0] = localVersion
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, fmt.Errorf("kms: %w", err)
	}
	return aead.Seal(out, out[1:], dek, aad(tenantID)), nil //nolint:gosec // G407 false positive: the nonce out[1:] was just filled from crypto/rand
}

// Unwrap implements KMS.
func (l *Local) Unwrap(_ context.Context, tenantID string, wrapped []byte) ([]byte, error) {
	if err := ValidateTenantID(tenantID); err != nil {
		return nil, err
	}
	kek, err := l.kek(tenantID, false)
	if err != nil {
		return nil, err
	}
	aead, err := newGCM(kek)
	if err != nil {
		return nil, err
	}
	n := aead.NonceSize()
	if len(wrapped) < 1+n+aead.Overhead() || wrapped[0] != localVersion {
		return nil, fmt.Errorf("%w: malformed", ErrUnwrap)
	}
	dek, err := aead.Open(nil, wrapped[1:1+n], wrapped[1+n:], aad(tenantID))
	if err != nil {
		return nil, ErrUnwrap
	}
	return dek, nil
}

// Destroy implements KMS: it writes the tombstone, then removes the KEK
// file, and syncs the directory.
func (l *Local) Destroy(_ context.Context, tenantID string) error {
	if err := ValidateTenantID(tenantID); err != nil {
		return err
	}
	tomb := filepath.Join(l.dir, tenantID+tombSuffix)
	f, err := os.OpenFile(tomb, os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("kms: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("kms: %w", err)
	}
	if err := os.Remove(filepath.Join(l.dir, tenantID+kekSuffix)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("kms: %w", err)
	}
	return syncDir(l.dir)
}

// kek reads the tenant's KEK, creating it if create is set and it does not
// exist. The tombstone is checked first, and again after a creation, so a
// Destroy racing with a Wrap cannot leave a live key behind unnoticed.
func (l *Local) kek(tenantID string, create bool) ([]byte, error) {
	if l.destroyed(tenantID) {
		return nil, ErrKeyDestroyed
	}
	path := filepath.Join(l.dir, tenantID+kekSuffix)
	kek, err := os.ReadFile(path)
	switch {
	case err == nil:
	case errors.Is(err, fs.ErrNotExist) && !create:
		if l.destroyed(tenantID) { // destroyed between the two checks
			return nil, ErrKeyDestroyed
		}
		return nil, ErrKeyNotFound
	case errors.Is(err, fs.ErrNotExist):
		if kek, err = l.create(path); err != nil {
			return nil, err
		}
		if l.destroyed(tenantID) {
			os.Remove(path)
			return nil, ErrKeyDestroyed
		}
	default:
		return nil, fmt.Errorf("kms: %w", err)
	}
	if len(kek) != kekSize {
		return nil, fmt.Errorf("kms: %s holds %d bytes, want %d", path, len(kek), kekSize)
	}
	return kek, nil
}

// create makes a new KEK at path atomically: written and synced under a
// temporary name, then hard-linked into place, which fails if another
// process created it first; then that one is used.
func (l *Local) create(path string) ([]byte, error) {
	kek := make([]byte, kekSize)
	if _, err := rand.Read(kek); err != nil {
		return nil, fmt.Errorf("kms: %w", err)
	}
	f, err := os.CreateTemp(l.dir, ".kek-*")
	if err != nil {
		return nil, fmt.Errorf("kms: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if _, err := f.Write(kek); err != nil {
		f.Close()
		return nil, fmt.Errorf("kms: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, fmt.Errorf("kms: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("kms: %w", err)
	}
	if err := os.Link(tmp, path); errors.Is(err, fs.ErrExist) {
		return os.ReadFile(path)
	} else if err != nil {
		return nil, fmt.Errorf("kms: %w", err)
	}
	if err := syncDir(l.dir); err != nil {
		return nil, err
	}
	return kek, nil
}

func (l *Local) destroyed(tenantID string) bool {
	_, err := os.Lstat(filepath.Join(l.dir, tenantID+tombSuffix))
	return err == nil
}

func aad(tenantID string) []byte { return []byte("tenantry-kms-local-v1\x00" + tenantID) }

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("kms: %w", err)
	}
	return cipher.NewGCM(block)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("kms: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("kms: sync %s: %w", dir, err)
	}
	return nil
}
