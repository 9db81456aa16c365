// Package peer answers one question for every component that honours a
// header only from a trusted hop (the resolver's X-Tenant-ID and mesh
// strategies, the assertion middleware's sidecar headers): is the direct
// peer of a request inside the trusted networks?
package peer

import "net/netip"

// Trusted reports whether remoteAddr, the direct peer of a request
// (http.Request.RemoteAddr, never a forwarding header), is inside one of the
// prefixes. IPv4-mapped IPv6 peers are compared as IPv4 and zones are
// ignored. A RemoteAddr that is not ip:port (a Unix socket, a hand-made
// request) is never trusted.
func Trusted(remoteAddr string, prefixes []netip.Prefix) bool {
	ap, err := netip.ParseAddrPort(remoteAddr)
	if err != nil {
		return false
	}
	a := ap.Addr().Unmap().WithZone("")
	for _, p := range prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
