package envelope

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/tenantry/tenantry/envelope/kms"
)

var (
	// ErrKeyDestroyed is returned by Encrypt and Decrypt for a tenant whose
	// key was destroyed (crypto-shredded). It is kms.ErrKeyDestroyed.
	ErrKeyDestroyed = kms.ErrKeyDestroyed
	// ErrDecrypt is returned for a ciphertext that does not authenticate for
	// the tenant and additional data given: another tenant's, altered, or
	// decrypted with other additional data.
	ErrDecrypt = errors.New("ciphertext does not authenticate")
	// ErrFormat is returned for input that is not a ciphertext of this
	// package (truncated, unknown version).
	ErrFormat = errors.New("not an envelope ciphertext")
)

const (
	version  = 1
	dekSize  = 32 // AES-256
	nonceLen = 12
	tagLen   = 16
)

// Config configures an Envelope.
type Config struct {
	// CacheTTL is how long an unwrapped data key stays in memory, and how
	// long a tenant's current data key is used for encryption before a new
	// one is made. It bounds how long another process that cached a key keeps
	// decrypting after the KEK was destroyed elsewhere (see Forget). Default
	// 5 minutes.
	CacheTTL time.Duration
	// MaxCached bounds the data keys held in memory. Default 4096.
	MaxCached int
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// WithDefaults returns a copy of c with defaults filled in. c may be nil.
func (c *Config) WithDefaults() *Config {
	out := Config{}
	if c != nil {
		out = *c
	}
	if out.CacheTTL == 0 {
		out.CacheTTL = 5 * time.Minute
	}
	if out.MaxCached == 0 {
		out.MaxCached = 4096
	}
	if out.Now == nil {
		out.Now = time.Now
	}
	return &out
}

func (c *Config) validate() error {
	if c.CacheTTL < 0 || c.MaxCached < 0 {
		return errors.New("envelope: CacheTTL and MaxCached must not be negative")
	}
	return nil
}

// maxUses bounds encryptions under one data key, far below the 2^32 at which
// random 96-bit GCM nonces start to risk a collision.
const maxUses = 1 << 28

// Envelope encrypts data with per-tenant data keys (AES-256-GCM) that are
// stored only wrapped by the tenant's key-encryption key in a KMS.
// Ciphertexts are self-contained: each carries its wrapped data key, so a
// copy anywhere (a replica, a backup, an export) is readable exactly as
// long as the tenant's KEK exists.
//
// It is safe for concurrent use.
type Envelope struct {
	kms kms.KMS
	cfg *Config

	mu      sync.Mutex
	current map[string]*dataKey // tenant ID -> key used for encryption
	opened  map[string]*dataKey // tenant ID + "\x00" + wrapped -> unwrapped key
}

type dataKey struct {
	aead    cipher.AEAD
	wrapped []byte
	created time.Time
	uses    int
}

// New returns an Envelope over k.
func New(k kms.KMS, cfg *Config) (*Envelope, error) {
	if k == nil {
		return nil, errors.New("envelope: nil KMS")
	}
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Envelope{kms: k, cfg: cfg, current: map[string]*dataKey{}, opened: map[string]*dataKey{}}, nil
}

// Encrypt encrypts plaintext for tenantID. aad is additional data that
// Decrypt must be given again, unencrypted and not stored in the
// ciphertext: bind the ciphertext to where it lives (table, column, primary
// key) so that it cannot be moved to another row. The tenant ID is always
// bound as well, so a ciphertext moved to another tenant fails to decrypt.
//
// Layout (version 1): 0x01 | uint16 len(wrapped) | wrapped data key |
// 12-byte nonce | AES-256-GCM ciphertext and tag.
func (e *Envelope) Encrypt(ctx context.Context, tenantID string, plaintext, aad []byte) ([]byte, error) {
	if err := kms.ValidateTenantID(tenantID); err != nil {
		return nil, err
	}
	dk, err := e.currentKey(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	hdr := header(dk.wrapped)
	out := make([]byte, len(hdr)+nonceLen, len(hdr)+nonceLen+len(plaintext)+tagLen)
	copy(out, hdr)
	nonce := out[len(hdr):]
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("envelope: %w", err)
	}
	return dk.aead.Seal(out, nonce, plaintext, additional(tenantID, aad, hdr)), nil
}

// Decrypt decrypts a ciphertext of Encrypt for tenantID with the same aad.
// It fails with ErrKeyDestroyed when the tenant's KEK was destroyed, with
// ErrDecrypt for another tenant's ciphertext, other aad or altered bytes,
// and with ErrFormat for input that is not a ciphertext.
func (e *Envelope) Decrypt(ctx context.Context, tenantID string, ciphertext, aad []byte) ([]byte, error) {
	if err := kms.ValidateTenantID(tenantID); err != nil {
		return nil, err
	}
	if len(ciphertext) < 3 || ciphertext[0] != version {
		return nil, ErrFormat
	}
	n := int(binary.BigEndian.Uint16(ciphertext[1:3]))
	if n == 0 || len(ciphertext) < 3+n+nonceLen+tagLen {
		return nil, ErrFormat
	}
	hdr, wrapped := ciphertext[:3+n], ciphertext[3:3+n]
	nonce, body := ciphertext[3+n:3+n+nonceLen], ciphertext[3+n+nonceLen:]
	dk, err := e.openKey(ctx, tenantID, wrapped)
	if err != nil {
		return nil, err
	}
	pt, err := dk.aead.Open(nil, nonce, body, additional(tenantID, aad, hdr))
	if err != nil {
		return nil, ErrDecrypt
	}
	return pt, nil
}

// Destroy crypto-shreds the tenant: its KEK is destroyed in the KMS and its
// data keys dropped from this process's memory. Every ciphertext of the
// tenant, wherever a copy of it is, becomes unreadable. Other processes drop
// their cached keys within CacheTTL, or at once when told (Forget).
func (e *Envelope) Destroy(ctx context.Context, tenantID string) error {
	if err := kms.ValidateTenantID(tenantID); err != nil {
		return err
	}
	e.Forget(tenantID)
	if err := e.kms.Destroy(ctx, tenantID); err != nil {
		return err
	}
	e.Forget(tenantID) // anything cached while the KMS call ran
	return nil
}

// Forget drops the tenant's data keys from memory, so that the next use
// asks the KMS. Call it when another process destroyed the tenant's key.
func (e *Envelope) Forget(tenantID string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.current, tenantID)
	prefix := tenantID + "\x00"
	for k := range e.opened {
		if strings.HasPrefix(k, prefix) {
			delete(e.opened, k)
		}
	}
}

func (e *Envelope) currentKey(ctx context.Context, tenantID string) (*dataKey, error) {
	now := e.cfg.Now()
	e.mu.Lock()
	if dk := e.current[tenantID]; dk != nil && now.Sub(dk.created) < e.cfg.CacheTTL && dk.uses < maxUses {
		dk.uses++
		e.mu.Unlock()
		return dk, nil
	}
	e.mu.Unlock()

	raw := make([]byte, dekSize)
	if _, err := rand.Read(raw); err != nil {
		return nil, fmt.Errorf("envelope: %w", err)
	}
	wrapped, err := e.kms.Wrap(ctx, tenantID, raw)
	if err != nil {
		return nil, fmt.Errorf("envelope: wrap data key: %w", err)
	}
	if len(wrapped) == 0 || len(wrapped) > 0xffff {
		return nil, fmt.Errorf("envelope: KMS returned a wrapped key of %d bytes", len(wrapped))
	}
	aead, err := newGCM(raw)
	if err != nil {
		return nil, err
	}
	dk := &dataKey{aead: aead, wrapped: wrapped, created: now, uses: 1}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.evict(now)
	e.current[tenantID] = dk
	e.opened[tenantID+"\x00"+string(wrapped)] = dk
	return dk, nil
}

func (e *Envelope) openKey(ctx context.Context, tenantID string, wrapped []byte) (*dataKey, error) {
	key := tenantID + "\x00" + string(wrapped)
	now := e.cfg.Now()
	e.mu.Lock()
	if dk := e.opened[key]; dk != nil && now.Sub(dk.created) < e.cfg.CacheTTL {
		e.mu.Unlock()
		return dk, nil
	}
	e.mu.Unlock()

	raw, err := e.kms.Unwrap(ctx, tenantID, wrapped)
	switch {
	case errors.Is(err, kms.ErrKeyDestroyed):
		return nil, ErrKeyDestroyed
	case errors.Is(err, kms.ErrUnwrap), errors.Is(err, kms.ErrKeyNotFound):
		return nil, fmt.Errorf("%w: data key: %w", ErrDecrypt, err)
	case err != nil:
		return nil, fmt.Errorf("envelope: unwrap data key: %w", err)
	}
	if len(raw) != dekSize {
		return nil, fmt.Errorf("%w: data key of %d bytes", ErrDecrypt, len(raw))
	}
	aead, err := newGCM(raw)
	if err != nil {
		return nil, err
	}
	dk := &dataKey{aead: aead, wrapped: append([]byte(nil), wrapped...), created: now}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.evict(now)
	e.opened[key] = dk
	return dk, nil
}

// evict keeps the caches under MaxCached: expired keys first, then any.
// Called with e.mu held.
func (e *Envelope) evict(now time.Time) {
	if len(e.current)+len(e.opened) < e.cfg.MaxCached {
		return
	}
	for k, dk := range e.opened {
		if now.Sub(dk.created) >= e.cfg.CacheTTL {
			delete(e.opened, k)
		}
	}
	for k, dk := range e.current {
		if now.Sub(dk.created) >= e.cfg.CacheTTL {
			delete(e.current, k)
		}
	}
	for k := range e.opened {
		if len(e.current)+len(e.opened) < e.cfg.MaxCached {
			return
		}
		delete(e.opened, k)
	}
	for k := range e.current {
		if len(e.current)+len(e.opened) < e.cfg.MaxCached {
			return
		}
		delete(e.current, k)
	}
}

func header(wrapped []byte) []byte {
	h := make([]byte, 3+len(wrapped))
	h[0] = version
	binary.BigEndian.PutUint16(h[1:3], uint16(len(wrapped)))
	copy(h[3:], wrapped)
	return h
}

// additional is the GCM additional data: a domain label, the tenant ID and
// the caller's aad, each length-prefixed, and the ciphertext header.
func additional(tenantID string, aad, hdr []byte) []byte {
	const label = "tenantry-envelope-v1"
	b := make([]byte, 0, len(label)+1+2+len(tenantID)+4+len(aad)+len(hdr))
	b = append(b, label...)
	b = append(b, 0)
	b = binary.BigEndian.AppendUint16(b, uint16(len(tenantID)))
	b = append(b, tenantID...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(aad)))
	b = append(b, aad...)
	return append(b, hdr...)
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("envelope: %w", err)
	}
	return cipher.NewGCM(block)
}
