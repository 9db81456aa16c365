package assertion

import (
	"net/http"
	"net/url"
	"strings"
)

// BaggageTenantKey is the W3C baggage member under which Transport puts the
// tenant ID, for traces and logs. Baggage is set by anyone upstream and
// forwarded to third parties: it is never evidence of the tenant.
const BaggageTenantKey = "tenant.id"

// BaggageTenant returns the tenant.id member of r's baggage header, for
// labelling traces and logs only; it is unauthenticated. Authorise on the
// tenant Middleware put in the context instead.
func BaggageTenant(r *http.Request) string {
	for _, v := range r.Header.Values("Baggage") {
		for _, m := range strings.Split(v, ",") {
			k, val, ok := strings.Cut(m, "=")
			if !ok || strings.TrimSpace(k) != BaggageTenantKey {
				continue
			}
			val, _, _ = strings.Cut(val, ";") // drop properties
			if s, err := url.PathUnescape(strings.TrimSpace(val)); err == nil {
				return s
			}
		}
	}
	return ""
}

// setBaggageMember sets key=value in h's baggage, dropping other members
// with that key and keeping the rest in order (W3C Baggage: list members
// key=value[;properties], comma-separated, values percent-encoded).
func setBaggageMember(h http.Header, key, value string) {
	var keep []string
	for _, v := range h.Values("Baggage") {
		for _, m := range strings.Split(v, ",") {
			m = strings.TrimSpace(m)
			if m == "" {
				continue
			}
			k, _, _ := strings.Cut(m, "=")
			if strings.TrimSpace(k) == key {
				continue
			}
			keep = append(keep, m)
		}
	}
	keep = append(keep, key+"="+url.PathEscape(value))
	h.Set("Baggage", strings.Join(keep, ","))
}
