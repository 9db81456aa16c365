package s3

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// VersityAdmin manages users on a versitygw server through its admin API
// (the API behind "versitygw admin"), for per-tenant credentials. It needs
// the gateway's root (or an admin) credentials.
//
// versitygw users are flat accounts (access key, secret, role): they carry
// no policy of their own that the S3 API enforces, so a tenant user
// with role "user" reaches nothing until a bucket policy grants it
// (Store.GrantTenant) or it owns a bucket.
type VersityAdmin struct {
	// Endpoint is the admin endpoint; by default versitygw serves it on its
	// S3 port.
	Endpoint string
	// Region is the gateway's region. Default "us-east-1".
	Region string
	// Credentials are the root or an admin account's.
	Credentials Credentials
	// HTTPClient defaults to http.DefaultClient.
	HTTPClient *http.Client
}

type versityAccount struct {
	XMLName xml.Name `xml:"Account"`
	Access  string   `xml:"Access"`
	Secret  string   `xml:"Secret"`
	Role    string   `xml:"Role"`
}

// CreateUser creates an account with role "user".
func (a *VersityAdmin) CreateUser(ctx context.Context, c Credentials) error {
	//nolint:gosec // G117: the admin API takes the new account's secret in the body, by design
	body, err := xml.Marshal(versityAccount{Access: c.AccessKey, Secret: c.SecretKey, Role: "user"})
	if err != nil {
		return err
	}
	return a.do(ctx, "/create-user", nil, body)
}

// DeleteUser deletes the account with accessKey.
func (a *VersityAdmin) DeleteUser(ctx context.Context, accessKey string) error {
	return a.do(ctx, "/delete-user", url.Values{"access": {accessKey}}, nil)
}

// ChangeBucketOwner makes owner (an access key) the owner of bucket: for a
// dedicated bucket, the tenant's account then reaches it without a bucket
// policy.
func (a *VersityAdmin) ChangeBucketOwner(ctx context.Context, bucket, owner string) error {
	return a.do(ctx, "/change-bucket-owner/", url.Values{"bucket": {bucket}, "owner": {owner}}, nil)
}

func (a *VersityAdmin) do(ctx context.Context, path string, q url.Values, body []byte) error {
	u := strings.TrimSuffix(a.Endpoint, "/") + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPatch, u, bytes.NewReader(body))
	if err != nil {
		return err
	}
	sum := sha256.Sum256(body)
	hash := hex.EncodeToString(sum[:])
	req.Header.Set("X-Amz-Content-Sha256", hash)
	region := a.Region
	if region == "" {
		region = "us-east-1"
	}
	creds := aws.Credentials{AccessKeyID: a.Credentials.AccessKey, SecretAccessKey: a.Credentials.SecretKey}
	if err := v4.NewSigner().SignHTTP(ctx, creds, req, hash, "s3", region, time.Now()); err != nil {
		return err
	}
	hc := a.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("versitygw admin %s: %w", path, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode >= 300 {
		return fmt.Errorf("versitygw admin %s: %s: %s", path, resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}
