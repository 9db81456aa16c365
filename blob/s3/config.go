package s3

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/tenantry/tenantry/tenant"
)

// MinPartSize is S3's smallest multipart part (except the last).
const MinPartSize = 5 << 20

// Config configures a Store.
type Config struct {
	// Endpoint is the base URL of an S3-compatible server, such as
	// "http://127.0.0.1:7070". Default "": AWS S3 in Region.
	Endpoint string
	// Region is the signing region. Default "us-east-1".
	Region string
	// Bucket is the shared bucket holding every tenant's objects under
	// "tenants/<tenant-id>/". Required.
	Bucket string
	// AccessKey and SecretKey are the service's own credentials: used for
	// every request when TenantCredentials is nil, and for provisioning
	// (EnsureBucket, GrantTenant). Required.
	AccessKey, SecretKey string
	// PathStyle addresses buckets as "endpoint/bucket" rather than
	// "bucket.endpoint". Default false (AWS style); S3-compatible servers
	// such as versitygw need true.
	PathStyle bool
	// PartSize is the multipart part size, and the largest object sent in a
	// single PutObject. Each upload in flight holds one buffer of this
	// size. Default 8 MiB; at least MinPartSize.
	PartSize int64
	// HTTPClient carries the requests. Default: the SDK's client.
	HTTPClient *http.Client
	// TenantCredentials, when set, gives each tenant's requests their own
	// credentials, scoped on the server to the tenant's prefix (see
	// GrantTenant), so that even a bug in Tenantry cannot reach another
	// tenant's objects. Default nil: the service credentials for all.
	TenantCredentials CredentialSource
	// BucketFor, when set, names a dedicated bucket for a tenant (for
	// example for an enterprise tier); "" means the shared Bucket. Keys
	// keep the "tenants/<tenant-id>/" prefix in a dedicated bucket too, so
	// objects can move between tiers unchanged. Default nil: one bucket.
	BucketFor func(*tenant.Tenant) string
	// PresignMaxExpiry caps the lifetime of presigned URLs. Default 15
	// minutes.
	PresignMaxExpiry time.Duration
	// Logger receives provisioning records. Default: discard.
	Logger *slog.Logger
}

// Credentials are an S3 access key and its secret.
type Credentials struct {
	AccessKey string
	SecretKey string
}

// CredentialSource returns the credentials to use for a tenant's requests.
type CredentialSource interface {
	TenantCredentials(ctx context.Context, t *tenant.Tenant) (Credentials, error)
}

// StaticCredentials is a CredentialSource from a map keyed by tenant ID. A
// tenant missing from the map gets an error, never the service credentials.
type StaticCredentials map[string]Credentials

// TenantCredentials implements CredentialSource.
func (m StaticCredentials) TenantCredentials(_ context.Context, t *tenant.Tenant) (Credentials, error) {
	c, ok := m[t.ID]
	if !ok {
		return Credentials{}, fmt.Errorf("s3: no credentials for tenant %s", t.ID)
	}
	return c, nil
}

// WithDefaults returns a copy of c with defaults filled in.
func (c *Config) WithDefaults() *Config {
	out := Config{}
	if c != nil {
		out = *c
	}
	if out.Region == "" {
		out.Region = "us-east-1"
	}
	if out.PartSize == 0 {
		out.PartSize = 8 << 20
	}
	if out.PresignMaxExpiry == 0 {
		out.PresignMaxExpiry = 15 * time.Minute
	}
	if out.Logger == nil {
		out.Logger = slog.New(slog.DiscardHandler)
	}
	return &out
}

func (c *Config) validate() error {
	var errs []error
	if c.Bucket == "" {
		errs = append(errs, errors.New("missing Bucket"))
	}
	if c.AccessKey == "" || c.SecretKey == "" {
		errs = append(errs, errors.New("missing AccessKey or SecretKey"))
	}
	if c.PartSize < MinPartSize {
		errs = append(errs, fmt.Errorf("PartSize %d is below the S3 minimum of %d", c.PartSize, MinPartSize))
	}
	if c.PresignMaxExpiry < 0 || c.PresignMaxExpiry > 7*24*time.Hour {
		errs = append(errs, errors.New("PresignMaxExpiry must be between 0 and 7 days"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("s3: invalid config: %w", err)
	}
	return nil
}
