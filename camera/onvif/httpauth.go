package onvif

import (
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// A device's snapshot URI is plain HTTP behind the device's account:
// cameras ask for HTTP Digest (RFC 7616; Hikvision, Dahua) or Basic. The
// client answers the challenge it gets.

// maxSnapshot bounds a snapshot read from a camera.
const maxSnapshot = 8 << 20

// Snapshot fetches a profile's JPEG snapshot from the device.
func (c *Client) Snapshot(ctx context.Context, profile string) ([]byte, error) {
	uri, err := c.SnapshotURI(ctx, profile)
	if err != nil {
		return nil, err
	}
	if uri == "" {
		return nil, errors.New("onvif: the device gives no snapshot URI")
	}
	// Only the device itself is asked (its account is sent there), and only
	// a JPEG is taken back.
	dev, err1 := url.Parse(c.URL)
	snap, err2 := url.Parse(uri)
	if err1 != nil || err2 != nil || (snap.Scheme != "http" && snap.Scheme != "https") || snap.Hostname() != dev.Hostname() {
		return nil, errors.New("onvif: the device's snapshot URI is not on the device itself")
	}
	body, err := GetWithAuth(ctx, c.http(), uri, c.Username, c.Password, maxSnapshot)
	if err != nil {
		return nil, err
	}
	if len(body) < 3 || body[0] != 0xFF || body[1] != 0xD8 || body[2] != 0xFF {
		return nil, errors.New("onvif: the device's snapshot is not a JPEG")
	}
	return body, nil
}

// GetWithAuth GETs url, answering a Digest or Basic challenge with the
// account, and returns the body (at most limit bytes). Its errors never
// carry the password.
func GetWithAuth(ctx context.Context, hc *http.Client, url, username, password string, limit int64) ([]byte, error) {
	// A redirect is not followed: the account is for this address only.
	noRedirect := *hc
	noRedirect.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	hc = &noRedirect
	res, err := get(ctx, hc, url, "")
	if err != nil {
		return nil, err
	}
	if res.StatusCode == http.StatusUnauthorized && username != "" {
		challenge := res.Header.Values("WWW-Authenticate")
		_ = res.Body.Close()
		auth, err := authorization(challenge, username, password, url)
		if err != nil {
			return nil, err
		}
		if res, err = get(ctx, hc, url, auth); err != nil {
			return nil, err
		}
	}
	defer res.Body.Close()
	switch {
	case res.StatusCode == http.StatusUnauthorized || res.StatusCode == http.StatusForbidden:
		return nil, ErrUnauthorized
	case res.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("onvif: snapshot: HTTP %d", res.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(res.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("onvif: snapshot: %w", err)
	}
	if int64(len(body)) > limit {
		return nil, fmt.Errorf("onvif: snapshot: larger than %d bytes", limit)
	}
	return body, nil
}

func get(ctx context.Context, hc *http.Client, url, auth string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("onvif: snapshot: %w", err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	res, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("onvif: snapshot: %w", err)
	}
	return res, nil
}

// authorization answers the strongest challenge offered: Digest (SHA-256
// or MD5, qop auth) before Basic.
func authorization(challenges []string, username, password, rawURL string) (string, error) {
	var basic bool
	var lastErr error
	for _, ch := range challenges {
		scheme, params, _ := strings.Cut(strings.TrimSpace(ch), " ")
		switch strings.ToLower(scheme) {
		case "digest":
			// A digest this client cannot compute (another algorithm) gives
			// way to the next challenge.
			auth, err := digest(ParseChallenge(params), username, password, rawURL)
			if err == nil {
				return auth, nil
			}
			lastErr = err
		case "basic":
			basic = true
		}
	}
	if basic {
		req, _ := http.NewRequest(http.MethodGet, rawURL, nil)
		req.SetBasicAuth(username, password)
		return req.Header.Get("Authorization"), nil
	}
	if lastErr != nil {
		return "", lastErr
	}
	return "", errors.New("onvif: snapshot: the camera asks for an authentication scheme other than Digest or Basic")
}

// ParseChallenge reads a Digest challenge's parameters (key="value", …).
func ParseChallenge(s string) map[string]string {
	out := map[string]string{}
	for s = strings.TrimSpace(s); s != ""; {
		eq := strings.IndexByte(s, '=')
		if eq <= 0 {
			break
		}
		key := strings.ToLower(strings.TrimSpace(s[:eq]))
		s = strings.TrimSpace(s[eq+1:])
		var val string
		if strings.HasPrefix(s, `"`) {
			end := 1
			for end < len(s) && s[end] != '"' {
				if s[end] == '\\' {
					end++
				}
				end++
			}
			if end >= len(s) {
				val, s = strings.ReplaceAll(s[1:], `\`, ""), ""
			} else {
				val, s = strings.ReplaceAll(s[1:end], `\`, ""), s[end+1:]
			}
		} else {
			val, s, _ = strings.Cut(s, ",")
			val = strings.TrimSpace(val)
		}
		out[key] = val
		s = strings.TrimLeft(strings.TrimSpace(s), ",")
		s = strings.TrimSpace(s)
	}
	return out
}

// DigestResponse is RFC 7616's response value for the given parameters
// (h: MD5 or SHA-256; qop "auth" or "" for RFC 2069).
func DigestResponse(h func() hash.Hash, username, realm, password, method, uri, nonce, nc, cnonce, qop string) string {
	sum := func(s string) string {
		x := h()
		x.Write([]byte(s))
		return hex.EncodeToString(x.Sum(nil))
	}
	ha1 := sum(username + ":" + realm + ":" + password)
	ha2 := sum(method + ":" + uri)
	if qop == "" {
		return sum(ha1 + ":" + nonce + ":" + ha2)
	}
	return sum(ha1 + ":" + nonce + ":" + nc + ":" + cnonce + ":" + qop + ":" + ha2)
}

func digest(p map[string]string, username, password, rawURL string) (string, error) {
	h := md5.New
	switch strings.ToUpper(p["algorithm"]) {
	case "", "MD5":
	case "SHA-256":
		h = sha256.New
	default:
		return "", fmt.Errorf("onvif: snapshot: digest algorithm %q is not supported", p["algorithm"])
	}
	req, err := http.NewRequest(http.MethodGet, rawURL, nil)
	if err != nil {
		return "", err
	}
	uri := req.URL.RequestURI()
	qop := ""
	for _, q := range strings.Split(p["qop"], ",") {
		if strings.TrimSpace(q) == "auth" {
			qop = "auth"
		}
	}
	var b [12]byte
	_, _ = rand.Read(b[:])
	cnonce := hex.EncodeToString(b[:])
	nc := "00000001"
	resp := DigestResponse(h, username, p["realm"], password, http.MethodGet, uri, p["nonce"], nc, cnonce, qop)
	q := func(s string) string { return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"` }
	out := "Digest username=" + q(username) + ", realm=" + q(p["realm"]) + ", nonce=" + q(p["nonce"]) + ", uri=" + q(uri) + ", response=" + q(resp)
	if p["algorithm"] != "" {
		out += ", algorithm=" + p["algorithm"]
	}
	if p["opaque"] != "" {
		out += ", opaque=" + q(p["opaque"])
	}
	if qop != "" {
		out += ", qop=auth, nc=" + nc + ", cnonce=" + q(cnonce)
	}
	return out, nil
}
