package gbsim

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Content types of GB/T 28181 bodies.
const (
	contentTypeMANSCDP  = "Application/MANSCDP+xml"
	contentTypeMANSRTSP = "Application/MANSRTSP"
	contentTypeSDP      = "application/sdp"
)

// defaultSubscribeExpires is the expiry of a SUBSCRIBE without Expires.
const defaultSubscribeExpires = 3600

// statusBadEvent answers a SUBSCRIBE to an event package the device lacks
// (RFC 6665).
const statusBadEvent = 489

// newToken is a random hex string of n bytes, for tags and Call-IDs.
func newToken(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// respond answers req with status and optional headers, logging a failure.
func (d *Device) respond(req *sip.Request, tx sip.ServerTransaction, status int, reason string, headers ...sip.Header) {
	res := sip.NewResponseFromRequest(req, status, reason, nil)
	for _, h := range headers {
		res.AppendHeader(h)
	}
	if err := tx.Respond(res); err != nil {
		d.log.Debug("gbsim: respond", "method", req.Method, "status", status, "err", err)
	}
}

func (d *Device) onOptions(req *sip.Request, tx sip.ServerTransaction) {
	d.respond(req, tx, sip.StatusOK, "OK")
}

func (d *Device) onUnexpected(req *sip.Request, tx sip.ServerTransaction) {
	d.respond(req, tx, sip.StatusMethodNotAllowed, "Method Not Allowed")
}

// onCancel gets the CANCELs sipgo could not match to an INVITE in
// progress.
func (d *Device) onCancel(req *sip.Request, tx sip.ServerTransaction) {
	d.respond(req, tx, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist")
}

// onMessage answers a MANSCDP MESSAGE at once, then does what it asks
// (sending Response MESSAGEs for a Query) in the background.
func (d *Device) onMessage(req *sip.Request, tx sip.ServerTransaction) {
	status, then := d.handleMANSCDP(req.Body())
	reason := "OK"
	switch status {
	case sip.StatusBadRequest:
		reason = "Bad Request"
	case sip.StatusNotFound:
		reason = "Not Found"
	}
	d.respond(req, tx, status, reason)
	if then != nil {
		d.goTracked(then)
	}
}

// subscription is a catalog subscription: a dialog the device sends
// NOTIFYs in.
type subscription struct {
	callID    string
	local     sip.FromHeader // the device's side, with its tag
	remote    sip.ToHeader   // the subscriber's side, with its tag
	target    sip.Uri        // the subscriber's Contact
	source    string         // where the SUBSCRIBE came from
	event     string         // the Event header, echoed in NOTIFY
	until     time.Time
	cseq      uint32
	notifying chan struct{} // one NOTIFY at a time, in CSeq order
}

// onSubscribe accepts a catalog subscription, refreshes one (a SUBSCRIBE
// in its dialog) or ends one (Expires: 0).
func (d *Device) onSubscribe(req *sip.Request, tx sip.ServerTransaction) {
	event := ""
	if h := req.GetHeader("Event"); h != nil {
		event = strings.TrimSpace(h.Value())
	}
	pkg, _, _ := strings.Cut(event, ";")
	if !strings.EqualFold(strings.TrimSpace(pkg), "Catalog") {
		d.respond(req, tx, statusBadEvent, "Bad Event")
		return
	}
	expires := defaultSubscribeExpires
	if h := req.GetHeader("Expires"); h != nil {
		if n, err := strconv.Atoi(strings.TrimSpace(h.Value())); err == nil && n >= 0 {
			expires = n
		}
	}
	callID := ""
	if h := req.CallID(); h != nil {
		callID = h.Value()
	}
	exp := sip.ExpiresHeader(expires)
	contact := d.contact(d.cfg.DeviceID)

	if to := req.To(); to != nil && to.Params.Has("tag") {
		// A refresh or an unsubscribe in an existing dialog.
		d.mu.Lock()
		sub, ok := d.subs[callID]
		if ok {
			if expires == 0 {
				delete(d.subs, callID)
			} else {
				sub.until = time.Now().Add(time.Duration(expires) * time.Second)
			}
		}
		d.mu.Unlock()
		if !ok {
			d.respond(req, tx, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist")
			return
		}
		d.respond(req, tx, sip.StatusOK, "OK", &exp, &contact)
		return
	}

	res := sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil)
	res.AppendHeader(&exp)
	res.AppendHeader(&contact)
	if expires > 0 && req.From() != nil && req.From().Params.Has("tag") {
		sub := &subscription{
			callID:    callID,
			local:     res.To().AsFrom(),
			remote:    req.From().AsTo(),
			target:    req.Recipient,
			source:    req.Source(),
			event:     event,
			until:     time.Now().Add(time.Duration(expires) * time.Second),
			cseq:      1,
			notifying: make(chan struct{}, 1),
		}
		if c := req.Contact(); c != nil {
			sub.target = c.Address
		}
		d.mu.Lock()
		d.subs[callID] = sub
		d.mu.Unlock()
	}
	if err := tx.Respond(res); err != nil {
		d.log.Debug("gbsim: respond SUBSCRIBE", "err", err)
	}
}

// Subscribed reports whether a platform holds a live catalog subscription
// of the device: only then does AddChannel or RemoveChannel reach it.
func (d *Device) Subscribed() bool {
	now := time.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, s := range d.subs {
		if now.Before(s.until) {
			return true
		}
	}
	return false
}

// notifyCatalog tells every catalog subscriber that ch was added, updated
// or deleted (event ADD, UPDATE, DEL), and waits for their answers.
func (d *Device) notifyCatalog(ch Channel, event string) error {
	now := time.Now()
	d.mu.Lock()
	var subs []*subscription
	for id, s := range d.subs {
		if now.After(s.until) {
			delete(d.subs, id)
			continue
		}
		subs = append(subs, s)
	}
	d.mu.Unlock()
	if len(subs) == 0 {
		return nil
	}
	body, err := d.catalogNotifyBody(ch, event)
	if err != nil {
		return err
	}
	var errs []error
	for _, s := range subs {
		if err := d.notify(s, body); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// notify sends one NOTIFY in subscription s's dialog.
func (d *Device) notify(s *subscription, body []byte) error {
	select {
	case s.notifying <- struct{}{}:
	case <-d.ctx.Done():
		return d.ctx.Err()
	}
	defer func() { <-s.notifying }()

	d.mu.Lock()
	s.cseq++
	cseq := s.cseq
	left := int(time.Until(s.until) / time.Second)
	d.mu.Unlock()

	req := sip.NewRequest(sip.NOTIFY, s.target)
	from, to := s.local, s.remote
	callID := sip.CallIDHeader(s.callID)
	ct := sip.ContentTypeHeader(contentTypeMANSCDP)
	contact := d.contact(d.cfg.DeviceID)
	req.AppendHeader(&from)
	req.AppendHeader(&to)
	req.AppendHeader(&callID)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: cseq, MethodName: sip.NOTIFY})
	req.AppendHeader(&contact)
	req.AppendHeader(sip.NewHeader("Event", s.event))
	req.AppendHeader(sip.NewHeader("Subscription-State", fmt.Sprintf("active;expires=%d", max(left, 0))))
	req.AppendHeader(&ct)
	req.SetBody(body)
	req.SetTransport(d.cfg.Transport)
	if d.cfg.Transport == "TCP" {
		// Back on the connection the SUBSCRIBE came on.
		req.SetDestination(s.source)
	}
	ctx, cancel := context.WithTimeout(d.ctx, requestTimeout)
	defer cancel()
	res, err := d.client.Do(ctx, req)
	if err != nil {
		return fmt.Errorf("gbsim: NOTIFY: %w", err)
	}
	if res.StatusCode != sip.StatusOK {
		return fmt.Errorf("gbsim: NOTIFY: %d %s", res.StatusCode, res.Reason)
	}
	return nil
}

// sessionOf returns the media session of an in-dialog request.
func (d *Device) sessionOf(req *sip.Request) *session {
	h := req.CallID()
	if h == nil {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.sessions[h.Value()]
}

func (d *Device) onAck(req *sip.Request, tx sip.ServerTransaction) {
	s := d.sessionOf(req)
	if s == nil {
		return
	}
	if err := s.dlg.ReadAck(req, tx); err != nil {
		d.log.Debug("gbsim: ACK", "err", err)
	}
}

func (d *Device) onBye(req *sip.Request, tx sip.ServerTransaction) {
	s := d.sessionOf(req)
	if s == nil {
		d.respond(req, tx, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist")
		return
	}
	if err := s.dlg.ReadBye(req, tx); err != nil {
		d.log.Debug("gbsim: BYE", "err", err)
		d.respond(req, tx, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist")
		return
	}
	s.cancel()
}

// onInfo takes MANSRTSP playback control (PLAY, PAUSE, TEARDOWN) in a
// playback session.
func (d *Device) onInfo(req *sip.Request, tx sip.ServerTransaction) {
	s := d.sessionOf(req)
	if s == nil {
		d.respond(req, tx, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist")
		return
	}
	cmd, err := parseMANSRTSP(req.Body())
	if err != nil {
		d.log.Debug("gbsim: INFO", "err", err)
		d.respond(req, tx, sip.StatusBadRequest, "Bad Request")
		return
	}
	d.respond(req, tx, sip.StatusOK, "OK")
	s.control(cmd)
}
