package s3

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/tenantry/tenantry/blob"
)

// Presign implements blob.Presigner. The key is validated and put under the
// tenant's prefix exactly as for a request, and the URL is signed with the
// tenant's credentials when TenantCredentials is set, so it is valid only for
// that one object of that one tenant. A PUT URL signs Content-Length (and
// Content-Type when given): the upload must carry exactly opts.Size bytes.
func (s *Store) Presign(ctx context.Context, key string, opts blob.PresignOptions) (*blob.PresignedRequest, error) {
	write := opts.Method == http.MethodPut
	tg, err := s.target(ctx, write)
	if err != nil {
		return nil, err
	}
	if err := blob.ValidateKey(key); err != nil {
		return nil, err
	}
	exp := opts.Expires
	if exp <= 0 {
		exp = 5 * time.Minute
	}
	exp = min(exp, s.cfg.PresignMaxExpiry)
	name := tg.prefix + key
	pc := awss3.NewPresignClient(tg.client, awss3.WithPresignExpires(exp))
	now := time.Now()
	var url string
	var hdr http.Header
	switch opts.Method {
	case http.MethodGet:
		req, err := pc.PresignGetObject(ctx, &awss3.GetObjectInput{Bucket: &tg.bucket, Key: &name})
		if err != nil {
			return nil, mapErr(err)
		}
		url, hdr = req.URL, req.SignedHeader
	case http.MethodPut:
		if opts.Size < 0 {
			return nil, fmt.Errorf("s3: presigned PUT needs a size")
		}
		in := &awss3.PutObjectInput{Bucket: &tg.bucket, Key: &name, ContentLength: aws.Int64(opts.Size)}
		if opts.ContentType != "" {
			in.ContentType = aws.String(opts.ContentType)
		}
		req, err := pc.PresignPutObject(ctx, in)
		if err != nil {
			return nil, mapErr(err)
		}
		url, hdr = req.URL, req.SignedHeader
	default:
		return nil, fmt.Errorf("%w: presigning %s", blob.ErrNotSupported, opts.Method)
	}
	out := &blob.PresignedRequest{Method: opts.Method, URL: url, ExpiresAt: now.Add(exp).UTC(), Header: map[string][]string{}}
	for k, v := range hdr {
		if k == "Host" {
			continue // set by the client from the URL
		}
		out.Header[k] = v
	}
	return out, nil
}
