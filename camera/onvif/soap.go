// Package onvif speaks ONVIF to cameras: the device, media and PTZ services
// over SOAP 1.2 with WS-Security UsernameToken (PasswordDigest)
// authentication, as Hikvision, Dahua, Uniview and most IP cameras serve
// them. It reads what gridwatch needs to add a camera by its address
// (device information, clock, profiles, stream and snapshot URIs) and
// steers PTZ domes (continuous move, stop, presets, home).
//
// The same types serve the camera simulator (camsim's ONVIF device
// service): one description of the messages, read and written by both
// sides, so the tests drive the real protocol.
package onvif

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Namespaces of the messages.
const (
	NSEnvelope = "http://www.w3.org/2003/05/soap-envelope"
	NSDevice   = "http://www.onvif.org/ver10/device/wsdl"
	NSMedia    = "http://www.onvif.org/ver10/media/wsdl"
	NSPTZ      = "http://www.onvif.org/ver20/ptz/wsdl"
	NSSchema   = "http://www.onvif.org/ver10/schema"
	nsWSSE     = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
	nsWSU      = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
	digestType = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest"
	nonceType  = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary"
)

// maxResponse bounds a response read from a camera.
const maxResponse = 1 << 20

// Envelope is a SOAP 1.2 envelope; Body holds one message.
type Envelope struct {
	XMLName xml.Name `xml:"http://www.w3.org/2003/05/soap-envelope Envelope"`
	Header  Header   `xml:"http://www.w3.org/2003/05/soap-envelope Header"`
	Body    Body     `xml:"http://www.w3.org/2003/05/soap-envelope Body"`
}

// Header carries the WS-Security token.
type Header struct {
	Security *Security `xml:"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd Security,omitempty"`
}

// Security is WS-Security's header with a UsernameToken.
type Security struct {
	UsernameToken UsernameToken `xml:"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd UsernameToken"`
}

// UsernameToken authenticates a request: Password is the digest
// Base64(SHA-1(nonce + created + password)).
type UsernameToken struct {
	Username string   `xml:"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd Username"`
	Password Password `xml:"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd Password"`
	Nonce    Nonce    `xml:"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd Nonce"`
	Created  string   `xml:"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd Created"`
}

// Password is the token's password digest.
type Password struct {
	Type  string `xml:"Type,attr"`
	Value string `xml:",chardata"`
}

// Nonce is the token's nonce, Base64.
type Nonce struct {
	EncodingType string `xml:"EncodingType,attr"`
	Value        string `xml:",chardata"`
}

// Body holds one message, as raw XML (its element names the operation).
type Body struct {
	Inner []byte `xml:",innerxml"`
}

// Fault is a SOAP fault a service answered.
type Fault struct {
	Code   string `xml:"Code>Subcode>Value"`
	Reason string `xml:"Reason>Text"`
}

// Digest is the WS-Security password digest of password for nonce and
// created.
func Digest(nonce []byte, created, password string) string {
	h := sha1.New()
	h.Write(nonce)
	h.Write([]byte(created))
	h.Write([]byte(password))
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// NewToken makes a UsernameToken for a request made at now.
func NewToken(username, password string, now time.Time) UsernameToken {
	nonce := make([]byte, 16)
	_, _ = rand.Read(nonce)
	created := now.UTC().Format("2006-01-02T15:04:05.000Z")
	return UsernameToken{
		Username: username,
		Password: Password{Type: digestType, Value: Digest(nonce, created, password)},
		Nonce:    Nonce{EncodingType: nonceType, Value: base64.StdEncoding.EncodeToString(nonce)},
		Created:  created,
	}
}

// Check verifies a token against the account's password, and that it was
// created within skew of now.
func (t UsernameToken) Check(username, password string, now time.Time, skew time.Duration) bool {
	if t.Username != username {
		return false
	}
	nonce, err := base64.StdEncoding.DecodeString(strings.TrimSpace(t.Nonce.Value))
	if err != nil {
		return false
	}
	created, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(t.Created))
	if err != nil || created.Sub(now).Abs() > skew {
		return false
	}
	return Digest(nonce, strings.TrimSpace(t.Created), password) == strings.TrimSpace(t.Password.Value)
}

// ErrUnauthorized is a camera refusing the credentials.
var ErrUnauthorized = errors.New("onvif: the camera refused the user name or password")

// call posts one message to a service and decodes its answer into resp
// (nil: none expected). Errors never carry the credentials.
func call(ctx context.Context, hc *http.Client, url string, tok *UsernameToken, req, resp any) error {
	inner, err := xml.Marshal(req)
	if err != nil {
		return err
	}
	env := Envelope{Body: Body{Inner: inner}}
	if tok != nil {
		env.Header.Security = &Security{UsernameToken: *tok}
	}
	body, err := xml.Marshal(env)
	if err != nil {
		return err
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(append([]byte(xml.Header), body...)))
	if err != nil {
		return fmt.Errorf("onvif: %w", err)
	}
	hr.Header.Set("Content-Type", `application/soap+xml; charset=utf-8`)
	res, err := hc.Do(hr)
	if err != nil {
		return fmt.Errorf("onvif: %w", err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, maxResponse))
	if err != nil {
		return fmt.Errorf("onvif: reading the answer: %w", err)
	}
	var out Envelope
	if err := xml.Unmarshal(data, &out); err != nil {
		if res.StatusCode == http.StatusUnauthorized {
			return ErrUnauthorized
		}
		return fmt.Errorf("onvif: HTTP %d, not a SOAP answer", res.StatusCode)
	}
	var fault struct {
		XMLName xml.Name `xml:"Fault"`
		Fault
	}
	if xml.Unmarshal(out.Body.Inner, &fault) == nil && fault.XMLName.Local == "Fault" {
		if strings.Contains(fault.Code, "NotAuthorized") || res.StatusCode == http.StatusUnauthorized {
			return ErrUnauthorized
		}
		return fmt.Errorf("onvif: the camera answered a fault: %s (%s)", strings.TrimSpace(fault.Reason), strings.TrimSpace(fault.Code))
	}
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("onvif: HTTP %d", res.StatusCode)
	}
	if resp == nil {
		return nil
	}
	if err := xml.Unmarshal(out.Body.Inner, resp); err != nil {
		return fmt.Errorf("onvif: the answer: %w", err)
	}
	return nil
}

// FaultBody is a SOAP 1.2 fault, for a service to answer with.
func FaultBody(subcode, reason string) []byte {
	var b bytes.Buffer
	b.WriteString(`<s:Fault xmlns:s="` + NSEnvelope + `" xmlns:ter="http://www.onvif.org/ver10/error"><s:Code><s:Value>s:Sender</s:Value><s:Subcode><s:Value>`)
	_ = xml.EscapeText(&b, []byte(subcode))
	b.WriteString(`</s:Value></s:Subcode></s:Code><s:Reason><s:Text xml:lang="en">`)
	_ = xml.EscapeText(&b, []byte(reason))
	b.WriteString(`</s:Text></s:Reason></s:Fault>`)
	return b.Bytes()
}

// Respond writes a SOAP envelope around body (raw XML, or a value to
// marshal) with the HTTP status.
func Respond(w http.ResponseWriter, status int, body any) {
	var inner []byte
	switch b := body.(type) {
	case []byte:
		inner = b
	default:
		var err error
		if inner, err = xml.Marshal(b); err != nil {
			status, inner = http.StatusInternalServerError, FaultBody("ter:Action", err.Error())
		}
	}
	out, _ := xml.Marshal(Envelope{Body: Body{Inner: inner}})
	w.Header().Set("Content-Type", "application/soap+xml; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(append([]byte(xml.Header), out...))
}
