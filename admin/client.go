package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tenantry/tenantry/catalog"
	"github.com/tenantry/tenantry/tenant"
)

// Client calls the admin API v1. A failure the API answers is an *Error
// (with Status, Code and Field); a failure to reach it is an
// *UnreachableError.
type Client struct {
	base  *url.URL
	token string
	http  *http.Client

	// Reason, when set, is sent as X-Tenantry-Reason with every change and
	// recorded in the audit log.
	Reason string
}

// UnreachableError is returned when the admin API cannot be reached at all
// (nothing listening, DNS, TLS, timeout).
type UnreachableError struct {
	URL string
	Err error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("cannot reach the admin API at %s: %v", e.URL, e.Err)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// NewClient returns a Client for the admin API at baseURL (e.g.
// "http://127.0.0.1:8081") authenticating with token. hc defaults to a
// client with a 30s timeout.
func NewClient(baseURL, token string, hc *http.Client) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("admin: the admin URL %q must look like http://127.0.0.1:8081", baseURL)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	return &Client{base: u, token: token, http: hc}, nil
}

// CreateTenant creates a tenant. On a server that provisions storage, the
// answer carries the placement chosen (model, cluster, database, schema).
func (c *Client) CreateTenant(ctx context.Context, req CreateTenantRequest) (*tenant.Tenant, error) {
	var t tenant.Tenant
	return &t, c.do(ctx, http.MethodPost, "/admin/v1/tenants", nil, req, &t)
}

// ListOptions selects a page of tenants.
type ListOptions struct {
	State tenant.State
	After string
	Limit int
}

// Tenants lists one page of tenants, by slug.
func (c *Client) Tenants(ctx context.Context, opts ListOptions) (*TenantList, error) {
	q := url.Values{}
	if opts.State != "" {
		q.Set("state", string(opts.State))
	}
	if opts.After != "" {
		q.Set("after", opts.After)
	}
	if opts.Limit > 0 {
		q.Set("limit", strconv.Itoa(opts.Limit))
	}
	var out TenantList
	return &out, c.do(ctx, http.MethodGet, "/admin/v1/tenants", q, nil, &out)
}

// AllTenants lists every tenant, following the pages.
func (c *Client) AllTenants(ctx context.Context, state tenant.State) ([]*tenant.Tenant, error) {
	var all []*tenant.Tenant
	after := ""
	for {
		page, err := c.Tenants(ctx, ListOptions{State: state, After: after, Limit: maxPageSize})
		if err != nil {
			return nil, err
		}
		all = append(all, page.Tenants...)
		if page.Next == "" {
			return all, nil
		}
		after = page.Next
	}
}

// Tenant reads one tenant by slug or ID.
func (c *Client) Tenant(ctx context.Context, slug string) (*tenant.Tenant, error) {
	var t tenant.Tenant
	return &t, c.do(ctx, http.MethodGet, tenantPath(slug), nil, nil, &t)
}

// UpdateTenant applies req (which must carry the version it is based on).
func (c *Client) UpdateTenant(ctx context.Context, slug string, req UpdateTenantRequest) (*tenant.Tenant, error) {
	var t tenant.Tenant
	return &t, c.do(ctx, http.MethodPatch, tenantPath(slug), nil, req, &t)
}

// DeleteTenant removes a tenant from the catalog, after dropping its
// storage on a server that provisions.
func (c *Client) DeleteTenant(ctx context.Context, slug string) error {
	return c.do(ctx, http.MethodDelete, tenantPath(slug), nil, nil, nil)
}

// Suspend suspends a tenant: its requests are answered 423.
func (c *Client) Suspend(ctx context.Context, slug string) (*tenant.Tenant, error) {
	var t tenant.Tenant
	return &t, c.do(ctx, http.MethodPost, tenantPath(slug)+"/suspend", nil, nil, &t)
}

// Provision creates what is missing of a tenant's storage (after a failed
// provisioning) and answers the tenant with its placement.
func (c *Client) Provision(ctx context.Context, slug string) (*tenant.Tenant, error) {
	var t tenant.Tenant
	return &t, c.do(ctx, http.MethodPost, tenantPath(slug)+"/provision", nil, nil, &t)
}

// Resume makes a suspended tenant active again.
func (c *Client) Resume(ctx context.Context, slug string) (*tenant.Tenant, error) {
	var t tenant.Tenant
	return &t, c.do(ctx, http.MethodPost, tenantPath(slug)+"/resume", nil, nil, &t)
}

// AddDomain attaches a custom domain to a tenant.
func (c *Client) AddDomain(ctx context.Context, slug, domain string) (*tenant.Tenant, error) {
	var t tenant.Tenant
	return &t, c.do(ctx, http.MethodPost, tenantPath(slug)+"/domains", nil, AddDomainRequest{Domain: domain}, &t)
}

// RemoveDomain detaches a custom domain from a tenant.
func (c *Client) RemoveDomain(ctx context.Context, slug, domain string) (*tenant.Tenant, error) {
	var t tenant.Tenant
	return &t, c.do(ctx, http.MethodDelete, tenantPath(slug)+"/domains/"+url.PathEscape(domain), nil, nil, &t)
}

// Clusters lists the registered clusters (connection strings redacted).
func (c *Client) Clusters(ctx context.Context) ([]catalog.Cluster, error) {
	var out ClusterList
	return out.Clusters, c.do(ctx, http.MethodGet, "/admin/v1/clusters", nil, nil, &out)
}

// CreateCluster registers a cluster.
func (c *Client) CreateCluster(ctx context.Context, req CreateClusterRequest) (*catalog.Cluster, error) {
	var out catalog.Cluster
	return &out, c.do(ctx, http.MethodPost, "/admin/v1/clusters", nil, req, &out)
}

// AuditOptions selects audit entries.
type AuditOptions struct {
	// Tenant is a tenant slug or ID; empty for all.
	Tenant string
	Limit  int
}

// Audit reads the audit log, newest first.
func (c *Client) Audit(ctx context.Context, opts AuditOptions) ([]catalog.AuditEntry, error) {
	q := url.Values{}
	if opts.Tenant != "" {
		if len(opts.Tenant) == 36 && strings.Count(opts.Tenant, "-") == 4 {
			q.Set("tenant_id", opts.Tenant)
		} else {
			q.Set("tenant", opts.Tenant)
		}
	}
	if opts.Limit > 0 {
		q.Set("limit", strconv.Itoa(opts.Limit))
	}
	var out AuditList
	return out.Entries, c.do(ctx, http.MethodGet, "/admin/v1/audit", q, nil, &out)
}

func tenantPath(slug string) string { return "/admin/v1/tenants/" + url.PathEscape(slug) }

// do sends one request and decodes a success into out (unless nil) or a
// failure into an *Error.
func (c *Client) do(ctx context.Context, method, path string, q url.Values, in, out any) error {
	// path's variable segments are already escaped (url.PathEscape).
	target := c.base.String() + path
	if len(q) > 0 {
		target += "?" + q.Encode()
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("admin: encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return fmt.Errorf("admin: %w", err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if c.Reason != "" && method != http.MethodGet {
		req.Header.Set(ReasonHeader, c.Reason)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return &UnreachableError{URL: c.base.String(), Err: errors.Unwrap(err)}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return &UnreachableError{URL: c.base.String(), Err: err}
	}
	if resp.StatusCode >= 400 {
		e := &Error{}
		if json.Unmarshal(raw, e) != nil || e.Code == "" {
			e = &Error{Status: resp.StatusCode, Title: http.StatusText(resp.StatusCode), Code: "unexpected_response",
				Detail: fmt.Sprintf("%s %s answered %s without an admin API problem; is %s the admin listener?", method, path, resp.Status, c.base)}
		}
		e.Status = resp.StatusCode
		return e
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("admin: %s %s: decode response: %w", method, path, err)
	}
	return nil
}
