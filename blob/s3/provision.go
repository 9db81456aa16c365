package s3

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/tenantry/tenantry/blob"
	"github.com/tenantry/tenantry/tenant"
)

// BucketOf returns the bucket holding t's objects: BucketFor(t), or the
// shared Bucket.
func (s *Store) BucketOf(t *tenant.Tenant) string {
	if s.cfg.BucketFor != nil {
		if b := s.cfg.BucketFor(t); b != "" {
			return b
		}
	}
	return s.cfg.Bucket
}

// EnsureBucket creates bucket with the service credentials unless it
// exists. Pass "" for the shared bucket.
func (s *Store) EnsureBucket(ctx context.Context, bucket string) error {
	if bucket == "" {
		bucket = s.cfg.Bucket
	}
	_, err := s.admin().CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: &bucket})
	var owned *types.BucketAlreadyOwnedByYou
	var exists *types.BucketAlreadyExists
	if err == nil || errors.As(err, &owned) || errors.As(err, &exists) {
		return nil
	}
	return fmt.Errorf("s3: create bucket %s: %w", bucket, err)
}

// policy is an S3 bucket policy document.
type policy struct {
	Version   string      `json:"Version"`
	Statement []statement `json:"Statement"`
}

type statement struct {
	Sid       string                    `json:"Sid,omitempty"`
	Effect    string                    `json:"Effect"`
	Principal map[string][]string       `json:"Principal"`
	Action    []string                  `json:"Action"`
	Resource  []string                  `json:"Resource"`
	Condition map[string]map[string]any `json:"Condition,omitempty"`
}

func sidPrefix(t *tenant.Tenant) string {
	return "tenantry-" + strings.ReplaceAll(t.ID, "-", "")
}

// tenantStatements grant principal exactly the tenant's prefix: object
// reads and writes under "tenants/<id>/*", and listing only with an
// s3:prefix inside it.
func tenantStatements(bucket string, t *tenant.Tenant, principal string) []statement {
	prefix := blob.TenantsDir + "/" + t.ID + "/"
	sid := sidPrefix(t)
	return []statement{
		{
			Sid: sid + "objects", Effect: "Allow",
			Principal: map[string][]string{"AWS": {principal}},
			Action:    []string{"s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"},
			Resource:  []string{"arn:aws:s3:::" + bucket + "/" + prefix + "*"},
		},
		{
			Sid: sid + "list", Effect: "Allow",
			Principal: map[string][]string{"AWS": {principal}},
			Action:    []string{"s3:ListBucket"},
			Resource:  []string{"arn:aws:s3:::" + bucket},
			Condition: map[string]map[string]any{"StringLike": {"s3:prefix": []string{prefix + "*"}}},
		},
	}
}

// GrantTenant adds statements to the bucket policy of t's bucket that let
// principal (an access key on versitygw; an IAM ARN on AWS) read, write,
// delete and list under t's prefix and nowhere else, replacing any earlier
// grant for t. It creates the bucket if needed. Use it with per-tenant
// credentials (Config.TenantCredentials) so that the server, not only
// Tenantry, keeps tenants apart.
//
// The policy is read, changed and written back; concurrent grants in one
// process are serialised, but two processes granting at once can lose one
// update: provision tenants from one place (the control plane). On AWS a
// bucket policy is limited to 20 KB (a few dozen tenants); beyond that use
// ABAC session policies or a bucket (or access point) per tenant.
func (s *Store) GrantTenant(ctx context.Context, t *tenant.Tenant, principal string) error {
	if !blob.IsCanonicalUUID(t.ID) {
		return blob.ErrNoTenant
	}
	bucket := s.BucketOf(t)
	if err := s.EnsureBucket(ctx, bucket); err != nil {
		return err
	}
	return s.editPolicy(ctx, bucket, func(p *policy) {
		p.Statement = slices.DeleteFunc(p.Statement, func(st statement) bool { return strings.HasPrefix(st.Sid, sidPrefix(t)) })
		p.Statement = append(p.Statement, tenantStatements(bucket, t, principal)...)
	})
}

// RevokeTenant removes t's statements from its bucket's policy.
func (s *Store) RevokeTenant(ctx context.Context, t *tenant.Tenant) error {
	return s.editPolicy(ctx, s.BucketOf(t), func(p *policy) {
		p.Statement = slices.DeleteFunc(p.Statement, func(st statement) bool { return strings.HasPrefix(st.Sid, sidPrefix(t)) })
	})
}

func (s *Store) editPolicy(ctx context.Context, bucket string, edit func(*policy)) error {
	s.policy.Lock()
	defer s.policy.Unlock()
	p := policy{Version: "2012-10-17"}
	out, err := s.admin().GetBucketPolicy(ctx, &awss3.GetBucketPolicyInput{Bucket: &bucket})
	var ae smithy.APIError
	switch {
	case err == nil:
		if err := json.Unmarshal([]byte(aws.ToString(out.Policy)), &p); err != nil {
			return fmt.Errorf("s3: bucket policy of %s: %w", bucket, err)
		}
	case errors.As(err, &ae) && ae.ErrorCode() == "NoSuchBucketPolicy":
	default:
		return fmt.Errorf("s3: get bucket policy of %s: %w", bucket, err)
	}
	edit(&p)
	if len(p.Statement) == 0 {
		_, err := s.admin().DeleteBucketPolicy(ctx, &awss3.DeleteBucketPolicyInput{Bucket: &bucket})
		return mapErr(err)
	}
	js, err := json.Marshal(p)
	if err != nil {
		return err
	}
	if _, err := s.admin().PutBucketPolicy(ctx, &awss3.PutBucketPolicyInput{Bucket: &bucket, Policy: aws.String(string(js))}); err != nil {
		return fmt.Errorf("s3: put bucket policy of %s: %w", bucket, err)
	}
	s.cfg.Logger.InfoContext(ctx, "granted tenant prefix in bucket policy", "bucket", bucket, "statements", len(p.Statement))
	return nil
}
