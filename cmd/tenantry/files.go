package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/tenantry/tenantry/blob"
	"github.com/tenantry/tenantry/blob/fair"
	"github.com/tenantry/tenantry/blob/local"
	"github.com/tenantry/tenantry/blob/quota"
	"github.com/tenantry/tenantry/blob/s3"
)

// Environment variables of the S3 file store. The credentials are never
// flags, so that they do not show in a process listing.
const (
	envS3Bucket    = "TENANTRY_S3_BUCKET"
	envS3Endpoint  = "TENANTRY_S3_ENDPOINT"
	envS3Region    = "TENANTRY_S3_REGION"
	envS3AccessKey = "TENANTRY_S3_ACCESS_KEY_ID"
	envS3SecretKey = "TENANTRY_S3_SECRET_ACCESS_KEY" //nolint:gosec // the name of a variable, not a credential
	// The AWS SDK's own names, read when Tenantry's are not set.
	envAWSAccessKey = "AWS_ACCESS_KEY_ID"
	envAWSSecretKey = "AWS_SECRET_ACCESS_KEY" //nolint:gosec // the name of a variable, not a credential
)

// blobsDirName is <data-dir>/blobs: the local file store's default.
const blobsDirName = "blobs"

// fileOptions are the flags of the file store of tenantry serve.
type fileOptions struct {
	dir string

	s3Bucket, s3Endpoint, s3Region string
	s3PathStyle                    bool

	maxBytes, maxObjects, maxObjectSize int64
	uploadSlots, inFlight               int
}

func (o *fileOptions) flags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.dir, "files-dir", "", "directory of the local file store (default <data-dir>/"+blobsDirName+"); ignored with --s3-bucket")
	f.StringVar(&o.s3Bucket, "s3-bucket", "", "keep files in this S3 bucket instead of a local directory ($"+envS3Bucket+"); credentials from $"+envS3AccessKey+" and $"+envS3SecretKey+" (or $"+envAWSAccessKey+", $"+envAWSSecretKey+")")
	f.StringVar(&o.s3Endpoint, "s3-endpoint", "", "URL of an S3-compatible server, e.g. http://127.0.0.1:7070 ($"+envS3Endpoint+"); default AWS S3")
	f.StringVar(&o.s3Region, "s3-region", "", "S3 signing region ($"+envS3Region+"); default us-east-1")
	f.BoolVar(&o.s3PathStyle, "s3-path-style", false, "address buckets as <endpoint>/<bucket> (default: on with --s3-endpoint, off for AWS)")
	f.Int64Var(&o.maxBytes, "files-quota-bytes", 1<<30, "bytes of files one tenant may store (0: no limit)")
	f.Int64Var(&o.maxObjects, "files-quota-objects", 100_000, "number of files one tenant may store (0: no limit)")
	f.Int64Var(&o.maxObjectSize, "files-max-size", 0, "largest single file in bytes (0: the upload limit, 5 GiB)")
	f.IntVar(&o.uploadSlots, "files-upload-slots", 0, "upload work shared fairly among tenants, in concurrent chunks (default GOMAXPROCS, at least 2)")
	f.IntVar(&o.inFlight, "files-tenant-inflight", 32, "file requests one tenant may have in flight; more are answered 429 (0: no cap)")
}

// fillFromEnv takes the S3 settings not given as flags from the
// environment.
func (o *fileOptions) fillFromEnv(cmd *cobra.Command, getenv func(string) string) {
	for _, s := range []struct {
		flag, env string
		p         *string
	}{
		{"s3-bucket", envS3Bucket, &o.s3Bucket},
		{"s3-endpoint", envS3Endpoint, &o.s3Endpoint},
		{"s3-region", envS3Region, &o.s3Region},
	} {
		if v := getenv(s.env); v != "" && !cmd.Flags().Changed(s.flag) {
			*s.p = v
		}
	}
	if !cmd.Flags().Changed("s3-path-style") && o.s3Endpoint != "" {
		o.s3PathStyle = true
	}
}

// fileStack is the file store of tenantry serve, as the HTTP API sees it:
// the backend (a local directory or S3) behind noisy-neighbour protection
// (package blob/fair) and quotas kept in the catalog (blob/quota).
type fileStack struct {
	// backend is the store itself, without limits, for deprovisioning.
	backend blob.Store
	handler http.Handler
	// describe says where files go, for the banner and the log.
	describe string
	close    func()
}

func newFileStack(ctx context.Context, o *fileOptions, dataDir string, catalogPool *pgxpool.Pool, getenv func(string) string, logger *slog.Logger) (*fileStack, error) {
	if o.maxBytes < 0 || o.maxObjects < 0 || o.maxObjectSize < 0 || o.inFlight < 0 || o.uploadSlots < 0 {
		return nil, errors.New("--files-quota-bytes, --files-quota-objects, --files-max-size, --files-upload-slots and --files-tenant-inflight must not be negative")
	}
	fs := &fileStack{close: func() {}}
	if o.s3Bucket != "" {
		access, secret := getenv(envS3AccessKey), getenv(envS3SecretKey)
		if access == "" && secret == "" {
			access, secret = getenv(envAWSAccessKey), getenv(envAWSSecretKey)
		}
		if access == "" || secret == "" {
			return nil, fmt.Errorf("--s3-bucket needs credentials: set $%s and $%s", envS3AccessKey, envS3SecretKey)
		}
		store, err := s3.New(&s3.Config{
			Endpoint: o.s3Endpoint, Region: o.s3Region, Bucket: o.s3Bucket, PathStyle: o.s3PathStyle,
			AccessKey: access, SecretKey: secret, Logger: logger,
		})
		if err != nil {
			return nil, err
		}
		if err := store.EnsureBucket(ctx, ""); err != nil {
			return nil, fmt.Errorf("S3 bucket %s: %w", o.s3Bucket, err)
		}
		fs.backend = store
		fs.describe = "s3://" + o.s3Bucket
		if o.s3Endpoint != "" {
			fs.describe += " at " + o.s3Endpoint
		}
	} else {
		dir := o.dir
		if dir == "" {
			dir = filepath.Join(dataDir, blobsDirName)
		}
		store, err := local.New(dir, nil)
		if err != nil {
			return nil, fmt.Errorf("local file store: %w", err)
		}
		fs.backend, fs.describe = store, dir
		fs.close = func() { _ = store.Close() }
	}

	sched, err := fair.NewScheduler(&fair.SchedulerConfig{Slots: o.uploadSlots})
	if err != nil {
		fs.close()
		return nil, err
	}
	inFlight := o.inFlight
	if inFlight == 0 {
		inFlight = -1 // the flag's 0 means no cap, fair's -1
	}
	limited, err := fair.New(fs.backend, &fair.Config{Scheduler: sched, InFlight: inFlight})
	if err != nil {
		fs.close()
		return nil, err
	}
	q, err := quota.New(catalogPool, &quota.Config{Default: quota.Limits{MaxBytes: o.maxBytes, MaxObjects: o.maxObjects, MaxObjectSize: o.maxObjectSize}})
	if err != nil {
		fs.close()
		return nil, err
	}
	h, err := blob.NewHandler(quota.Wrap(limited, q), &blob.HandlerConfig{Logger: logger})
	if err != nil {
		fs.close()
		return nil, err
	}
	fs.handler = h
	return fs, nil
}

// quotaSummary describes the per-tenant limits for the banner.
func (o *fileOptions) quotaSummary() string {
	var parts []string
	if o.maxBytes > 0 {
		parts = append(parts, humanBytes(o.maxBytes))
	}
	if o.maxObjects > 0 {
		parts = append(parts, fmt.Sprintf("%d files", o.maxObjects))
	}
	if len(parts) == 0 {
		return "no quota"
	}
	return strings.Join(parts, ", ") + " per tenant"
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	v := float64(n) / float64(div)
	if v == float64(int64(v)) {
		return fmt.Sprintf("%d %ciB", int64(v), "KMGTP"[exp])
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMGTP"[exp])
}
