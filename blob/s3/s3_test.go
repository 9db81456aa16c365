package s3_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/tenantry/tenantry/blob"
	"github.com/tenantry/tenantry/blob/blobtest"
	"github.com/tenantry/tenantry/blob/fair"
	"github.com/tenantry/tenantry/blob/s3"
	"github.com/tenantry/tenantry/internal/versitygw"
	"github.com/tenantry/tenantry/tenant"
)

type mode int

const (
	serviceCreds   mode = iota // one credential, prefix from ctx
	tenantCreds                // a versitygw user per tenant + bucket policy
	dedicatedBucks             // a bucket per tenant
	dedicatedCreds             // a bucket and a versitygw user per tenant
)

// provisioner creates, on first sight of a tenant, what the mode needs: a
// versitygw user and a bucket-policy grant, or a dedicated bucket.
type provisioner struct {
	srv   *versitygw.Server
	admin *s3.VersityAdmin
	store *s3.Store
	mode  mode

	mu    sync.Mutex
	creds map[string]s3.Credentials
}

func (p *provisioner) TenantCredentials(ctx context.Context, t *tenant.Tenant) (s3.Credentials, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.creds[t.ID]; ok {
		return c, nil
	}
	c := s3.Credentials{AccessKey: "t" + strings.ReplaceAll(t.ID, "-", "")[:20], SecretKey: "s" + strings.ReplaceAll(t.ID, "-", "")}
	switch p.mode {
	case tenantCreds, dedicatedCreds:
		if err := p.admin.CreateUser(ctx, c); err != nil {
			return s3.Credentials{}, err
		}
		if err := p.store.GrantTenant(ctx, t, c.AccessKey); err != nil {
			return s3.Credentials{}, err
		}
	case dedicatedBucks:
		if err := p.store.EnsureBucket(ctx, p.store.BucketOf(t)); err != nil {
			return s3.Credentials{}, err
		}
		c = s3.Credentials{AccessKey: p.srv.RootAccess, SecretKey: p.srv.RootSecret}
	}
	p.creds[t.ID] = c
	return c, nil
}

type fixture struct {
	srv    *versitygw.Server
	store  *s3.Store
	prov   *provisioner
	bucket string
}

func newFixture(t *testing.T, srv *versitygw.Server, m mode, partSize int64) *fixture {
	t.Helper()
	bucket := "b-" + strings.ReplaceAll(blobtest.NewUUID(), "-", "")[:24]
	prov := &provisioner{srv: srv, mode: m, creds: map[string]s3.Credentials{},
		admin: &s3.VersityAdmin{Endpoint: srv.Endpoint, Region: srv.Region, Credentials: s3.Credentials{AccessKey: srv.RootAccess, SecretKey: srv.RootSecret}}}
	cfg := &s3.Config{
		Endpoint: srv.Endpoint, Region: srv.Region, Bucket: bucket, PathStyle: true,
		AccessKey: srv.RootAccess, SecretKey: srv.RootSecret, PartSize: partSize,
	}
	if m != serviceCreds {
		cfg.TenantCredentials = prov
	}
	if m == dedicatedBucks || m == dedicatedCreds {
		cfg.BucketFor = func(t *tenant.Tenant) string {
			return "d-" + bucket[2:12] + "-" + strings.ReplaceAll(t.ID, "-", "")[:20]
		}
	}
	store, err := s3.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	prov.store = store
	if err := store.EnsureBucket(context.Background(), ""); err != nil {
		t.Fatalf("%v\nserver log:\n%s", err, srv.Log())
	}
	return &fixture{srv: srv, store: store, prov: prov, bucket: bucket}
}

// rootClient talks to the server with the root credentials, around Tenantry.
func rootClient(srv *versitygw.Server) *awss3.Client {
	return client(srv, srv.RootAccess, srv.RootSecret)
}

func client(srv *versitygw.Server, access, secret string) *awss3.Client {
	return awss3.New(awss3.Options{
		Region: srv.Region, BaseEndpoint: aws.String(srv.Endpoint), UsePathStyle: true,
		Credentials:                credentials.NewStaticCredentialsProvider(access, secret, ""),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
}

// rawNames lists every object in the fixture's buckets with root credentials.
func (f *fixture) rawNames(t *testing.T) []string {
	ctx := context.Background()
	c := rootClient(f.srv)
	bs, err := c.ListBuckets(ctx, &awss3.ListBucketsInput{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, b := range bs.Buckets {
		name := aws.ToString(b.Name)
		if name != f.bucket && !strings.HasPrefix(name, "d-"+f.bucket[2:12]+"-") {
			continue
		}
		p := awss3.NewListObjectsV2Paginator(c, &awss3.ListObjectsV2Input{Bucket: &name})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range page.Contents {
				out = append(out, aws.ToString(o.Key))
			}
		}
	}
	return out
}

func TestConformance(t *testing.T) {
	t.Parallel()
	srv := versitygw.Start(t)
	for name, m := range map[string]mode{"ServiceCredentials": serviceCreds, "TenantCredentials": tenantCreds, "DedicatedBuckets": dedicatedBucks, "DedicatedBucketsTenantCredentials": dedicatedCreds} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var fixtures sync.Map
			blobtest.Run(t, blobtest.Harness{
				NewStore: func(t *testing.T) blob.Store {
					f := newFixture(t, srv, m, s3.MinPartSize)
					fixtures.Store(f.store, f)
					return f.store
				},
				RawNames: func(t *testing.T, s blob.Store) []string {
					f, _ := fixtures.Load(s)
					return f.(*fixture).rawNames(t)
				},
				LargeSize: 2*s3.MinPartSize + 1,
				// versitygw's posix backend stores "a" and "a/b" as a file and
				// a directory of one name, so it cannot hold both.
				NoKeyAndChild: true,
			})
		})
	}
}

// TestConformanceFair runs the suite through the fair wrapper, whose
// chunked, scheduled reader feeds the multipart path.
func TestConformanceFair(t *testing.T) {
	t.Parallel()
	srv := versitygw.Start(t)
	sched, err := fair.NewScheduler(&fair.SchedulerConfig{Slots: 2})
	if err != nil {
		t.Fatal(err)
	}
	var fixtures sync.Map
	blobtest.Run(t, blobtest.Harness{
		NewStore: func(t *testing.T) blob.Store {
			f := newFixture(t, srv, tenantCreds, s3.MinPartSize)
			fs, err := fair.New(f.store, &fair.Config{Scheduler: sched, ChunkSize: 64 << 10})
			if err != nil {
				t.Fatal(err)
			}
			fixtures.Store(blob.Store(fs), f)
			return fs
		},
		RawNames: func(t *testing.T, s blob.Store) []string {
			f, _ := fixtures.Load(s)
			return f.(*fixture).rawNames(t)
		},
		LargeSize:     2*s3.MinPartSize + 1,
		NoKeyAndChild: true,
	})
}

func isAccessDenied(err error) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && ae.ErrorCode() == "AccessDenied"
}

// TestTenantCredentialsConfined uses a tenant's own S3 credentials directly,
// as a compromised or buggy Tenantry would, and checks that the server
// refuses everything outside the tenant's prefix.
func TestTenantCredentialsConfined(t *testing.T) {
	t.Parallel()
	srv := versitygw.Start(t)
	for name, m := range map[string]mode{"SharedBucket": tenantCreds, "DedicatedBuckets": dedicatedCreds} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			testConfined(t, srv, m)
		})
	}
}

func testConfined(t *testing.T, srv *versitygw.Server, m mode) {
	f := newFixture(t, srv, m, s3.MinPartSize)
	actx, a := blobtest.NewTenant(t, "pro")
	gctx, g := blobtest.NewTenant(t, "pro")
	for _, c := range []struct {
		ctx context.Context
		key string
	}{{actx, "a.txt"}, {gctx, "g.txt"}} {
		if _, err := f.store.Put(c.ctx, c.key, strings.NewReader("data"), blob.PutOptions{Size: 4}); err != nil {
			t.Fatal(err)
		}
	}
	ac, _ := f.prov.TenantCredentials(actx, a)
	acme := client(srv, ac.AccessKey, ac.SecretKey)
	ctx := context.Background()
	bucket := f.store.BucketOf(a)  // a's own bucket
	gbucket := f.store.BucketOf(g) // the victim's (the same, or its own)
	gkey := "tenants/" + g.ID + "/g.txt"
	akey := "tenants/" + a.ID + "/a.txt"

	// acme's own prefix works with its credentials.
	if _, err := acme.GetObject(ctx, &awss3.GetObjectInput{Bucket: &bucket, Key: &akey}); err != nil {
		t.Fatalf("acme reading its own object: %v", err)
	}
	// Everything else is refused by the server.
	attempts := map[string]func() error{
		"get other": func() error {
			_, err := acme.GetObject(ctx, &awss3.GetObjectInput{Bucket: &gbucket, Key: &gkey})
			return err
		},
		"head other": func() error {
			_, err := acme.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: &gbucket, Key: &gkey})
			return err
		},
		"overwrite other": func() error {
			_, err := acme.PutObject(ctx, &awss3.PutObjectInput{Bucket: &gbucket, Key: &gkey, Body: strings.NewReader("pwn")})
			return err
		},
		"delete other": func() error {
			_, err := acme.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: &gbucket, Key: &gkey})
			return err
		},
		"write outside tenants": func() error {
			_, err := acme.PutObject(ctx, &awss3.PutObjectInput{Bucket: &bucket, Key: aws.String("root.txt"), Body: strings.NewReader("pwn")})
			return err
		},
		"dotdot into other": func() error {
			_, err := acme.PutObject(ctx, &awss3.PutObjectInput{Bucket: &bucket, Key: aws.String("tenants/" + a.ID + "/../" + g.ID + "/pwn.txt"), Body: strings.NewReader("pwn")})
			return err
		},
		"list other": func() error {
			_, err := acme.ListObjectsV2(ctx, &awss3.ListObjectsV2Input{Bucket: &gbucket, Prefix: aws.String("tenants/" + g.ID + "/")})
			return err
		},
		"list all tenants": func() error {
			_, err := acme.ListObjectsV2(ctx, &awss3.ListObjectsV2Input{Bucket: &bucket, Prefix: aws.String("tenants/")})
			return err
		},
		"list bucket": func() error {
			_, err := acme.ListObjectsV2(ctx, &awss3.ListObjectsV2Input{Bucket: &bucket})
			return err
		},
		"list victim bucket": func() error {
			_, err := acme.ListObjectsV2(ctx, &awss3.ListObjectsV2Input{Bucket: &gbucket})
			return err
		},
		"read policy": func() error {
			_, err := acme.GetBucketPolicy(ctx, &awss3.GetBucketPolicyInput{Bucket: &bucket})
			return err
		},
		"replace policy": func() error {
			_, err := acme.PutBucketPolicy(ctx, &awss3.PutBucketPolicyInput{Bucket: &bucket, Policy: aws.String(`{"Version":"2012-10-17","Statement":[]}`)})
			return err
		},
	}
	for name, try := range attempts {
		err := try()
		if err == nil {
			t.Errorf("%s: allowed", name)
		} else if !isAccessDenied(err) && statusOf(err) != http.StatusForbidden {
			t.Errorf("%s: %v, want AccessDenied", name, err)
		}
	}
	// globex's object is intact, and nothing landed outside the prefixes.
	obj, err := f.store.Get(gctx, "g.txt")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(obj.Body)
	obj.Body.Close()
	if string(b) != "data" {
		t.Fatalf("globex's object: %q", b)
	}
	names := f.rawNames(t)
	slices.Sort(names)
	if want := []string{akey, gkey}; !slices.Equal(names, slices.Sorted(slices.Values(want))) {
		t.Fatalf("bucket holds %q, want %q", names, want)
	}
}

func statusOf(err error) int {
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

// TestPresign checks that presigned URLs reach only the tenant's own object,
// and that a PUT URL holds the signed size.
func TestPresign(t *testing.T) {
	t.Parallel()
	srv := versitygw.Start(t)
	for name, m := range map[string]mode{"ServiceCredentials": serviceCreds, "TenantCredentials": tenantCreds} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, srv, m, s3.MinPartSize)
			actx, a := blobtest.NewTenant(t, "free")
			gctx, _ := blobtest.NewTenant(t, "free")
			if _, err := f.store.Put(gctx, "secret.txt", strings.NewReader("globex"), blob.PutOptions{Size: 6}); err != nil {
				t.Fatal(err)
			}
			put, err := f.store.Presign(actx, "up.txt", blob.PresignOptions{Method: http.MethodPut, Size: 5, ContentType: "text/plain"})
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(put.URL, "/tenants/"+a.ID+"/up.txt") {
				t.Fatalf("PUT URL %s is not under the tenant's prefix", put.URL)
			}
			do := func(method, url string, hdr map[string][]string, body string) (int, string) {
				req, _ := http.NewRequest(method, url, strings.NewReader(body))
				for k, v := range hdr {
					req.Header[k] = v
				}
				req.ContentLength = int64(len(body))
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				return resp.StatusCode, string(b)
			}
			if code, body := do(put.Method, put.URL, put.Header, "hello"); code != http.StatusOK {
				t.Fatalf("presigned PUT: %d %s", code, body)
			}
			if code, _ := do(put.Method, put.URL, put.Header, "longer body"); code < 400 {
				t.Errorf("presigned PUT with another size: %d", code)
			}
			// The URL cannot be bent to another key: changing the path breaks
			// the signature.
			bent := strings.Replace(put.URL, "/up.txt", "/../"+"x.txt", 1)
			if code, _ := do(put.Method, bent, put.Header, "hello"); code < 400 {
				t.Errorf("bent presigned PUT: %d", code)
			}
			get, err := f.store.Presign(actx, "up.txt", blob.PresignOptions{Method: http.MethodGet})
			if err != nil {
				t.Fatal(err)
			}
			if code, body := do(get.Method, get.URL, get.Header, ""); code != http.StatusOK || body != "hello" {
				t.Fatalf("presigned GET: %d %q", code, body)
			}
			// a cannot presign globex's object: the key is a's.
			get2, _ := f.store.Presign(actx, "secret.txt", blob.PresignOptions{Method: http.MethodGet})
			if code, body := do(get2.Method, get2.URL, get2.Header, ""); code != http.StatusNotFound && code != http.StatusForbidden {
				t.Errorf("presigned GET of globex's key name from acme: %d %q", code, body)
			}
			for _, hk := range blobtest.HostileKeys() {
				if _, err := f.store.Presign(actx, hk.Key, blob.PresignOptions{Method: http.MethodGet}); !errors.Is(err, blob.ErrInvalidKey) {
					t.Errorf("Presign(%s): %v", hk.Name, err)
				}
			}
			if _, err := f.store.Presign(context.Background(), "up.txt", blob.PresignOptions{Method: http.MethodGet}); !errors.Is(err, blob.ErrNoTenant) {
				t.Errorf("Presign without tenant: %v", err)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cfg  s3.Config
	}{
		{"no bucket", s3.Config{AccessKey: "a", SecretKey: "b"}},
		{"no creds", s3.Config{Bucket: "b"}},
		{"small parts", s3.Config{Bucket: "b", AccessKey: "a", SecretKey: "b", PartSize: 1 << 20}},
	} {
		if _, err := s3.New(&tc.cfg); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
	_ = fmt.Sprint
}

// TestHandlerPresign asks the HTTP API for presigned URLs.
func TestHandlerPresign(t *testing.T) {
	t.Parallel()
	srv := versitygw.Start(t)
	f := newFixture(t, srv, tenantCreds, s3.MinPartSize)
	_, a := blobtest.NewTenant(t, "free")
	h, err := blob.NewHandler(f.store, nil)
	if err != nil {
		t.Fatal(err)
	}
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r.WithContext(tenant.NewContext(r.Context(), a, "test")))
	}))
	defer api.Close()
	resp, err := http.Post(api.URL+"/api/v1/files/photos/cat.jpg?presign=put&size=4&expires=60", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	var pr blob.PresignedRequest
	json.NewDecoder(resp.Body).Decode(&pr)
	resp.Body.Close()
	if resp.StatusCode != 200 || pr.Method != "PUT" || !strings.Contains(pr.URL, "/tenants/"+a.ID+"/photos/cat.jpg") || pr.ExpiresAt.IsZero() {
		t.Fatalf("presign: %d %+v", resp.StatusCode, pr)
	}
	req, _ := http.NewRequest(pr.Method, pr.URL, strings.NewReader("meow"))
	for k, v := range pr.Header {
		req.Header[k] = v
	}
	up, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	up.Body.Close()
	if up.StatusCode != 200 {
		t.Fatalf("upload through presigned URL: %d", up.StatusCode)
	}
	for _, q := range []string{"photos/cat.jpg?presign=put", "photos/cat.jpg?presign=delete", "..%2Fx?presign=get"} {
		resp, err := http.Post(api.URL+"/api/v1/files/"+q, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("presign %s: %d", q, resp.StatusCode)
		}
	}
}
