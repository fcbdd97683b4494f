package httpapi

import (
	"net"
	"net/netip"
	"strings"

	"github.com/gin-gonic/gin"
)

const originKey = "origin"

// OriginFrom is middleware that works out once, for every request, the
// scheme://host its client sent it to (Origin reads it): the Host header
// and the connection's TLS; X-Forwarded-Proto and X-Forwarded-Host count
// only from one of trusted (addresses or CIDR prefixes, as gin takes
// them). Documents that link to themselves (OGC API Features) build their
// links on it.
func OriginFrom(trusted []string) gin.HandlerFunc {
	return func(c *gin.Context) {
		scheme := "http"
		if c.Request.TLS != nil {
			scheme = "https"
		}
		host := c.Request.Host
		if fromTrustedProxy(trusted, c.Request.RemoteAddr) {
			if p := firstHeaderValue(c.GetHeader("X-Forwarded-Proto")); p == "http" || p == "https" {
				scheme = p
			}
			if h := firstHeaderValue(c.GetHeader("X-Forwarded-Host")); validHost(h) {
				host = h
			}
		}
		if !validHost(host) {
			host = "localhost"
		}
		c.Set(originKey, scheme+"://"+host)
		c.Next()
	}
}

// Origin is the request's scheme://host as OriginFrom found it.
func Origin(c *gin.Context) string { return c.GetString(originKey) }

func firstHeaderValue(v string) string {
	first, _, _ := strings.Cut(v, ",")
	return strings.TrimSpace(first)
}

// validHost accepts a host[:port] made of the characters a host name, an
// IPv4 or a bracketed IPv6 address may hold.
func validHost(h string) bool {
	if h == "" || len(h) > 255 {
		return false
	}
	for _, r := range h {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-.:[]_", r)) {
			return false
		}
	}
	return true
}

// fromTrustedProxy reports whether the connection comes from one of
// trusted.
func fromTrustedProxy(trusted []string, remote string) bool {
	if len(trusted) == 0 {
		return false
	}
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	addr = addr.Unmap()
	for _, p := range trusted {
		if pre, err := netip.ParsePrefix(p); err == nil && pre.Contains(addr) {
			return true
		}
		if a, err := netip.ParseAddr(p); err == nil && a.Unmap() == addr {
			return true
		}
	}
	return false
}
