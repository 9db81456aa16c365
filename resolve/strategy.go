package resolve

import (
	"net/http"
	"sync/atomic"

	"github.com/tenantry/tenantry/tenant"
)

// Names of the strategies, as returned by Strategy.Name, by Resolve, and by
// tenant.ResolvedVia for a request they resolved.
const (
	StrategyHost       = "host"
	StrategySubdomain  = "subdomain"
	StrategyHeader     = "header"
	StrategyPathPrefix = "path"
	StrategyJWT        = "jwt"
	StrategyClientCert = "client-cert"
	StrategyMeshXFCC   = "mesh-xfcc"
)

// Strategy finds a tenant identifier in a request. Strategies are built by
// this package's constructors (Host, Subdomain, Header, PathPrefix, JWT,
// ClientCert, MeshXFCC) and checked by New, which reports a misconfigured
// one; the interface cannot be implemented outside the package.
//
// A strategy has three outcomes for a request: it finds no identifier (the
// next strategy is asked), it finds a well-formed identifier from a source
// it trusts (the tenant is looked up), or it fails the request with a
// problem (a malformed, repeated or untrusted identifier). A malformed
// identifier is never treated as "no identifier".
type Strategy interface {
	// Name is the strategy's name, one of the Strategy* constants.
	Name() string

	common() *base
	prepare() error
	find(r *http.Request) (key, *Problem)
}

// base is embedded in every strategy.
type base struct {
	name string
	// source names where the identifier is read, for problem details
	// ("host", "header X-Tenant-ID").
	source string
	p      sourceProblems
	// claimed is set by the New that prepares the strategy; a strategy
	// serves one Resolver only.
	claimed atomic.Bool
}

func (b *base) Name() string  { return b.name }
func (b *base) common() *base { return b }

// setSource sets the source and builds its problems; prepare calls it.
func (b *base) setSource(source string) {
	b.source = source
	b.p = newSourceProblems(source)
}

// keyKind says which Lookup method a key is for.
type keyKind uint8

const (
	keyNone   keyKind = iota // no identifier found
	keySlug                  // Lookup.BySlug
	keyID                    // Lookup.ByID
	keyDomain                // Lookup.ByDomain
)

// key is an identifier a strategy found. value is usually a substring of the
// request, so finding a key allocates nothing.
type key struct {
	kind  keyKind
	value string
	// cut is, for PathPrefix, the number of bytes to strip from the front of
	// the request path.
	cut int
}

// slugOrID classifies an identifier supplied by a client or a token: a
// canonical lower-case UUID is a tenant ID, anything else must be a valid
// slug. Nothing is normalised: "ACME" or an upper-case UUID is malformed.
func slugOrID(v string) (key, bool) {
	if tenant.IsID(v) {
		return key{kind: keyID, value: v}, true
	}
	if tenant.IsValidSlug(v) {
		return key{kind: keySlug, value: v}, true
	}
	return key{}, false
}
