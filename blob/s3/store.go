package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/tenantry/tenantry/blob"
)

// Store keeps objects in S3-compatible storage. It implements blob.Store and
// blob.Presigner.
type Store struct {
	cfg     *Config
	clients sync.Map // access key -> *awss3.Client
	bufs    sync.Pool
	policy  sync.Mutex // serialises bucket-policy read-modify-write
}

var (
	_ blob.Store     = (*Store)(nil)
	_ blob.Presigner = (*Store)(nil)
)

// New returns a Store. It does not contact the server; call EnsureBucket to
// create the bucket.
func New(cfg *Config) (*Store, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	s := &Store{cfg: cfg}
	s.bufs.New = func() any { b := make([]byte, cfg.PartSize); return &b }
	return s, nil
}

// client returns a client signing with creds.
func (s *Store) client(creds Credentials) *awss3.Client {
	if c, ok := s.clients.Load(creds.AccessKey + "\x00" + creds.SecretKey); ok {
		return c.(*awss3.Client)
	}
	opts := awss3.Options{
		Region:                     s.cfg.Region,
		Credentials:                credentials.NewStaticCredentialsProvider(creds.AccessKey, creds.SecretKey, ""),
		UsePathStyle:               s.cfg.PathStyle,
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	}
	if s.cfg.Endpoint != "" {
		opts.BaseEndpoint = aws.String(s.cfg.Endpoint)
	}
	if s.cfg.HTTPClient != nil {
		opts.HTTPClient = s.cfg.HTTPClient
	}
	c, _ := s.clients.LoadOrStore(creds.AccessKey+"\x00"+creds.SecretKey, awss3.New(opts))
	return c.(*awss3.Client)
}

// admin is the client with the service credentials.
func (s *Store) admin() *awss3.Client {
	return s.client(Credentials{AccessKey: s.cfg.AccessKey, SecretKey: s.cfg.SecretKey})
}

// target is where one request goes: the tenant's client, bucket and prefix.
type target struct {
	client *awss3.Client
	bucket string
	prefix string
	creds  Credentials
}

func (s *Store) target(ctx context.Context, write bool) (target, error) {
	scope := blob.Scope
	if write {
		scope = blob.ScopeWrite
	}
	t, prefix, err := scope(ctx)
	if err != nil {
		return target{}, err
	}
	tg := target{bucket: s.cfg.Bucket, prefix: prefix}
	if s.cfg.BucketFor != nil {
		if b := s.cfg.BucketFor(t); b != "" {
			tg.bucket = b
		}
	}
	tg.creds = Credentials{AccessKey: s.cfg.AccessKey, SecretKey: s.cfg.SecretKey}
	if s.cfg.TenantCredentials != nil {
		tg.creds, err = s.cfg.TenantCredentials.TenantCredentials(ctx, t)
		if err != nil {
			return target{}, err
		}
	}
	tg.client = s.client(tg.creds)
	return tg, nil
}

// Put implements blob.Store. Objects up to PartSize go in one PutObject;
// larger or unsized ones in a multipart upload of PartSize parts, which is
// aborted if anything fails. Memory per upload is one PartSize buffer.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, opts blob.PutOptions) (blob.Info, error) {
	tg, err := s.target(ctx, true)
	if err != nil {
		return blob.Info{}, err
	}
	if err := blob.ValidateKey(key); err != nil {
		return blob.Info{}, err
	}
	name := tg.prefix + key
	ct := blob.ContentTypeOrDefault(opts.ContentType)
	bp := s.bufs.Get().(*[]byte)
	defer s.bufs.Put(bp)
	buf := *bp

	n, err := readFull(r, buf)
	if err != nil && !errors.Is(err, io.EOF) {
		return blob.Info{}, err
	}
	if errors.Is(err, io.EOF) { // the whole object is in buf
		if opts.Size >= 0 && int64(n) != opts.Size {
			return blob.Info{}, blob.ErrSizeMismatch
		}
		out, err := tg.client.PutObject(ctx, &awss3.PutObjectInput{
			Bucket:        &tg.bucket,
			Key:           &name,
			Body:          bytes.NewReader(buf[:n]),
			ContentLength: aws.Int64(int64(n)),
			ContentType:   &ct,
		})
		if err != nil {
			return blob.Info{}, mapErr(err)
		}
		return blob.Info{Key: key, Size: int64(n), ContentType: ct, ETag: aws.ToString(out.ETag), ModTime: time.Now().UTC()}, nil
	}
	if opts.Size >= 0 && int64(n) > opts.Size {
		return blob.Info{}, blob.ErrSizeMismatch
	}
	return s.multipart(ctx, tg, key, name, ct, r, buf, n, opts.Size)
}

func (s *Store) multipart(ctx context.Context, tg target, key, name, ct string, r io.Reader, buf []byte, n int, size int64) (blob.Info, error) {
	up, err := tg.client.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{Bucket: &tg.bucket, Key: &name, ContentType: &ct})
	if err != nil {
		return blob.Info{}, mapErr(err)
	}
	done := false
	defer func() {
		if done {
			return
		}
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_, _ = tg.client.AbortMultipartUpload(actx, &awss3.AbortMultipartUploadInput{Bucket: &tg.bucket, Key: &name, UploadId: up.UploadId})
	}()
	var parts []types.CompletedPart
	var total int64
	for num := int32(1); ; num++ {
		total += int64(n)
		if size >= 0 && total > size {
			return blob.Info{}, blob.ErrSizeMismatch
		}
		out, err := tg.client.UploadPart(ctx, &awss3.UploadPartInput{
			Bucket: &tg.bucket, Key: &name, UploadId: up.UploadId, PartNumber: aws.Int32(num),
			Body: bytes.NewReader(buf[:n]), ContentLength: aws.Int64(int64(n)),
		})
		if err != nil {
			return blob.Info{}, mapErr(err)
		}
		parts = append(parts, types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(num)})
		var rerr error
		n, rerr = readFull(r, buf)
		if rerr != nil && !errors.Is(rerr, io.EOF) {
			return blob.Info{}, rerr
		}
		if errors.Is(rerr, io.EOF) && n == 0 {
			break
		}
		if errors.Is(rerr, io.EOF) { // last, short part
			total += int64(n)
			if size >= 0 && total != size {
				return blob.Info{}, blob.ErrSizeMismatch
			}
			out, err := tg.client.UploadPart(ctx, &awss3.UploadPartInput{
				Bucket: &tg.bucket, Key: &name, UploadId: up.UploadId, PartNumber: aws.Int32(num + 1),
				Body: bytes.NewReader(buf[:n]), ContentLength: aws.Int64(int64(n)),
			})
			if err != nil {
				return blob.Info{}, mapErr(err)
			}
			parts = append(parts, types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(num + 1)})
			break
		}
	}
	if size >= 0 && total != size {
		return blob.Info{}, blob.ErrSizeMismatch
	}
	if err := ctx.Err(); err != nil {
		return blob.Info{}, err
	}
	out, err := tg.client.CompleteMultipartUpload(ctx, &awss3.CompleteMultipartUploadInput{
		Bucket: &tg.bucket, Key: &name, UploadId: up.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	})
	if err != nil {
		return blob.Info{}, mapErr(err)
	}
	done = true
	return blob.Info{Key: key, Size: total, ContentType: ct, ETag: aws.ToString(out.ETag), ModTime: time.Now().UTC()}, nil
}

// readFull reads into buf until it is full (nil error) or r ends (io.EOF,
// with n possibly > 0).
func readFull(r io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// Get implements blob.Store.
func (s *Store) Get(ctx context.Context, key string) (*blob.Object, error) {
	tg, err := s.target(ctx, false)
	if err != nil {
		return nil, err
	}
	if err := blob.ValidateKey(key); err != nil {
		return nil, err
	}
	name := tg.prefix + key
	out, err := tg.client.GetObject(ctx, &awss3.GetObjectInput{Bucket: &tg.bucket, Key: &name})
	if err != nil {
		return nil, mapErr(err)
	}
	return &blob.Object{
		Info: blob.Info{Key: key, Size: aws.ToInt64(out.ContentLength), ContentType: aws.ToString(out.ContentType),
			ETag: aws.ToString(out.ETag), ModTime: aws.ToTime(out.LastModified)},
		Body: out.Body,
	}, nil
}

// Stat implements blob.Store.
func (s *Store) Stat(ctx context.Context, key string) (blob.Info, error) {
	tg, err := s.target(ctx, false)
	if err != nil {
		return blob.Info{}, err
	}
	if err := blob.ValidateKey(key); err != nil {
		return blob.Info{}, err
	}
	name := tg.prefix + key
	out, err := tg.client.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: &tg.bucket, Key: &name})
	if err != nil {
		return blob.Info{}, mapErr(err)
	}
	return blob.Info{Key: key, Size: aws.ToInt64(out.ContentLength), ContentType: aws.ToString(out.ContentType),
		ETag: aws.ToString(out.ETag), ModTime: aws.ToTime(out.LastModified)}, nil
}

// Delete implements blob.Store.
func (s *Store) Delete(ctx context.Context, key string) error {
	tg, err := s.target(ctx, true)
	if err != nil {
		return err
	}
	if err := blob.ValidateKey(key); err != nil {
		return err
	}
	name := tg.prefix + key
	_, err = tg.client.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: &tg.bucket, Key: &name})
	if err := mapErr(err); err != nil && !errors.Is(err, blob.ErrNotFound) {
		return err
	}
	return nil
}

// List implements blob.Store. Keys the backend returns outside the tenant's
// prefix (which a correct server never does) are dropped, as are keys
// ValidateKey refuses (written around Tenantry).
func (s *Store) List(ctx context.Context, opts blob.ListOptions) (*blob.ListPage, error) {
	tg, err := s.target(ctx, false)
	if err != nil {
		return nil, err
	}
	if err := blob.ValidatePrefix(opts.Prefix); err != nil {
		return nil, err
	}
	in := &awss3.ListObjectsV2Input{
		Bucket:  &tg.bucket,
		Prefix:  aws.String(tg.prefix + opts.Prefix),
		MaxKeys: aws.Int32(int32(blob.ClampLimit(opts.Limit))),
	}
	if opts.StartAfter != "" {
		if err := blob.ValidatePrefix(opts.StartAfter); err != nil {
			return nil, err
		}
		in.StartAfter = aws.String(tg.prefix + opts.StartAfter)
	}
	out, err := tg.client.ListObjectsV2(ctx, in)
	if err != nil {
		return nil, mapErr(err)
	}
	page := &blob.ListPage{Objects: make([]blob.Info, 0, len(out.Contents))}
	var last string
	for _, o := range out.Contents {
		full := aws.ToString(o.Key)
		k, ok := strings.CutPrefix(full, tg.prefix)
		if !ok {
			continue
		}
		last = k
		if blob.ValidateKey(k) != nil {
			continue
		}
		page.Objects = append(page.Objects, blob.Info{Key: k, Size: aws.ToInt64(o.Size), ETag: aws.ToString(o.ETag), ModTime: aws.ToTime(o.LastModified)})
	}
	if aws.ToBool(out.IsTruncated) && last != "" {
		page.Next = last
	}
	return page, nil
}

// mapErr turns S3 "not found" answers into blob.ErrNotFound and wraps the
// rest.
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	var nsk *types.NoSuchKey
	var nf *types.NotFound
	if errors.As(err, &nsk) || errors.As(err, &nf) {
		return blob.ErrNotFound
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "NoSuchKey", "NotFound":
			return blob.ErrNotFound
		case "ObjectParentIsFile", "ExistingObjectIsDirectory":
			// POSIX-backed gateways cannot hold "a" and "a/b" at once.
			return fmt.Errorf("%w: %s", blob.ErrConflict, ae.ErrorMessage())
		}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("s3: %w", err)
}
