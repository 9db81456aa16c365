package blob

import (
	"context"
	"io"
	"time"
)

// Store keeps a tenant's objects. Every method takes the tenant from ctx
// (tenant.FromContext) and works only under that tenant's prefix
// "tenants/<tenant-id>/"; keys are relative to it and are validated with
// ValidateKey (or ValidatePrefix) before anything reaches the backend. A ctx
// without a tenant fails with ErrNoTenant.
//
// Implementations: blob/local (a directory, the embedded default) and blob/s3
// (S3-compatible object storage). Wrappers add quotas (blob/quota) and
// noisy-neighbour protection (blob/fair). The conformance suite in
// blob/blobtest pins the behaviour every implementation shares.
type Store interface {
	// Put stores the bytes read from r under key, replacing any object
	// there. The object appears whole or not at all: a failed or cancelled
	// Put leaves the previous object (or nothing) in place. When opts.Size
	// is not negative, r must yield exactly that many bytes (else
	// ErrSizeMismatch).
	Put(ctx context.Context, key string, r io.Reader, opts PutOptions) (Info, error)
	// Get opens the object for reading. The caller must close Body.
	Get(ctx context.Context, key string) (*Object, error)
	// Stat returns the object's metadata.
	Stat(ctx context.Context, key string) (Info, error)
	// Delete removes the object. Deleting a missing object is not an error.
	Delete(ctx context.Context, key string) error
	// List returns the tenant's objects whose keys start with opts.Prefix,
	// in byte-wise key order, one page at a time.
	List(ctx context.Context, opts ListOptions) (*ListPage, error)
}

// Presigner is implemented by stores that can hand out URLs through which a
// client reaches one of the tenant's objects directly, without Tenantry in
// the data path (blob/s3 does).
type Presigner interface {
	// Presign returns a URL valid for opts.Method on key, within the tenant
	// of ctx, until the returned expiry.
	Presign(ctx context.Context, key string, opts PresignOptions) (*PresignedRequest, error)
}

// PutOptions describe an object being written.
type PutOptions struct {
	// Size is the number of bytes the reader yields, or -1 when unknown
	// (streamed without a Content-Length). 0 is an empty object.
	Size int64
	// ContentType is stored with the object and returned by Get and Stat.
	// Default: "application/octet-stream".
	ContentType string
}

// Info describes a stored object.
type Info struct {
	// Key is the object's key, relative to the tenant.
	Key string `json:"key"`
	// Size is the object's length in bytes.
	Size int64 `json:"size"`
	// ContentType is the media type given when the object was written.
	// List does not return it on every backend; it is then "".
	ContentType string `json:"content_type,omitempty"`
	// ETag identifies this version of the object's content (quoted, as in
	// HTTP). Backends compute it differently; compare it only with ETags from
	// the same store.
	ETag string `json:"etag,omitempty"`
	// ModTime is when the object was last written.
	ModTime time.Time `json:"modified"`
}

// Object is an open object: its metadata and a stream of its content.
type Object struct {
	Info
	// Body streams the content; close it when done.
	Body io.ReadCloser
}

// ListOptions select a page of objects.
type ListOptions struct {
	// Prefix restricts the listing to keys that start with it (see
	// ValidatePrefix). Default: "", all of the tenant's objects.
	Prefix string
	// StartAfter lists only keys that sort after it; pass the previous
	// page's Next to continue. Default: "", from the start.
	StartAfter string
	// Limit is the most objects returned in one page. Default and maximum:
	// MaxListLimit.
	Limit int
}

// MaxListLimit is the largest page List returns.
const MaxListLimit = 1000

// ListPage is one page of a listing.
type ListPage struct {
	// Objects are in byte-wise key order.
	Objects []Info `json:"objects"`
	// Next, when not empty, is the StartAfter of the next page.
	Next string `json:"next,omitempty"`
}

// PresignOptions describe the request a presigned URL allows.
type PresignOptions struct {
	// Method is http.MethodGet or http.MethodPut.
	Method string
	// Expires is how long the URL stays valid. Default 5 minutes; stores
	// cap it (blob/s3: Config.PresignMaxExpiry).
	Expires time.Duration
	// Size, for PUT, is the exact Content-Length the upload must carry; it
	// is signed into the URL. Required for PUT (so quotas can be reserved).
	Size int64
	// ContentType, for PUT, is signed into the URL when set.
	ContentType string
}

// PresignedRequest is a URL and the headers a client must send with it.
type PresignedRequest struct {
	Method    string              `json:"method"`
	URL       string              `json:"url"`
	Header    map[string][]string `json:"header,omitempty"`
	ExpiresAt time.Time           `json:"expires_at"`
}

// DefaultContentType is stored when PutOptions.ContentType is empty.
const DefaultContentType = "application/octet-stream"

// ContentTypeOrDefault returns ct, or DefaultContentType when ct is empty.
func ContentTypeOrDefault(ct string) string {
	if ct == "" {
		return DefaultContentType
	}
	return ct
}

// ClampLimit returns the effective page size for a requested limit.
func ClampLimit(n int) int {
	if n <= 0 || n > MaxListLimit {
		return MaxListLimit
	}
	return n
}
