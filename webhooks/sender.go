package webhooks

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Error classes of failed attempts.
const (
	ClassTimeout    = "timeout"
	ClassConnection = "connection"
	ClassTLS        = "tls"
	ClassDNS        = "dns"
	ClassHTTPStatus = "http_status"
	ClassBlocked    = "blocked"
	// ClassNoListener: an app without a webhook URL, and no listen session.
	ClassNoListener = "no_listener"
	// ClassSecret: the app's signing secret cannot be opened.
	ClassSecret = "secret"
)

// Sender is the HTTP side of delivery: one guarded client (no proxy, no
// redirects, no private addresses unless Options.AllowPrivate), signed
// requests, and the classification of what went wrong.
type Sender struct {
	client  *http.Client
	opts    Options
	metrics *Metrics
	// userAgent is every request's User-Agent.
	userAgent string
}

// NewSender returns the sender; metrics may be nil.
func NewSender(opts Options, metrics *Metrics) *Sender {
	opts = opts.withDefaults()
	s := &Sender{opts: opts, metrics: metrics, userAgent: "Plugboard-Webhooks/" + opts.Version}
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second, Control: s.checkAddress}
	// No Client.Timeout or ResponseHeaderTimeout: each request's context
	// has its deadline (send, SignedGet, Call), which bounds its response
	// headers and its body alike; the other two were two more timers a
	// request, set and stopped for nothing. Calls share the pool.
	s.client = &http.Client{
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         dialer.DialContext,
			MaxIdleConns:        maxIdleConns,
			MaxIdleConnsPerHost: maxIdleConns,
			IdleConnTimeout:     90 * time.Second,
			TLSHandshakeTimeout: 10 * time.Second,
			ForceAttemptHTTP2:   true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return s
}

// maxIdleConns bounds the kept-alive connections, to one host as to all:
// as many as the sends that may be in flight at once (Workers drains of
// BatchSize each, plus the sweeps'), so that a connection returned after
// a send is kept for the next. With 256 per host, 20 apps answered by one
// host (the bench's sink; a partner's apps behind one gateway) dialled a
// fresh connection for most sends above that: 11 % of the fan-out run's
// CPU in connect and accept.
const maxIdleConns = 4096

var errBlocked = errors.New("address not allowed")

// checkAddress refuses loopback, private, link-local (cloud metadata) and
// unspecified addresses at connect time, on the IP actually dialled, so DNS
// rebinding does not get through.
func (s *Sender) checkAddress(network, address string, _ syscall.RawConn) error {
	if s.opts.AllowPrivate {
		return nil
	}
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return errBlocked
	}
	ip := net.ParseIP(host)
	if ip == nil || ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsUnspecified() || ip.IsMulticast() || cgnat.Contains(ip) {
		return fmt.Errorf("%w: %s", errBlocked, ip)
	}
	return nil
}

var _, cgnat, _ = net.ParseCIDR("100.64.0.0/10")

// Envelope builds the body partners receive.
func Envelope(deliveryID, eventType string, at time.Time, installationUUID *string, data json.RawMessage) []byte {
	// Sized to fit: the fixed text, the timestamp (at most 35 bytes) and
	// the rest, so the body is one allocation, made once.
	n := len(`{"id":"","type":"","timestamp":"","installation":,"data":}`) + len(deliveryID) + len(eventType) + 35 + len(data) + 2
	if installationUUID != nil {
		n += len(`{"uuid":""}`) + len(*installationUUID)
	} else {
		n += len("null")
	}
	b := make([]byte, 0, n)
	b = append(b, `{"id":"`...)
	b = append(b, deliveryID...)
	b = append(b, `","type":"`...)
	b = append(b, eventType...)
	b = append(b, `","timestamp":"`...)
	b = at.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","installation":`...)
	if installationUUID != nil {
		b = append(b, `{"uuid":"`...)
		b = append(b, *installationUUID...)
		b = append(b, `"}`...)
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"data":`...)
	if len(data) == 0 {
		b = append(b, "{}"...)
	} else {
		b = append(b, data...)
	}
	return append(b, '}')
}

const maxBody = 4 << 10

// webhookHeaders are the request headers of an attempt.
type webhookHeaders struct {
	userAgent, id, timestamp, signature, event, attempt string
	installation                                        *string // nil: none
}

// header is w as the request's header. The names are canonical already
// and the values share one array: what Header.Set would make, without a
// slice per value.
func (w webhookHeaders) header() http.Header {
	vals := make([]string, 0, 8)
	h := make(http.Header, 8)
	set := func(name, v string) {
		vals = append(vals, v)
		h[name] = vals[len(vals)-1 : len(vals) : len(vals)]
	}
	set("Content-Type", "application/json")
	set("User-Agent", w.userAgent)
	set("Webhook-Id", w.id)
	set("Webhook-Timestamp", w.timestamp)
	set("Webhook-Signature", w.signature)
	set("Plugboard-Event", w.event)
	if w.installation != nil {
		set("Plugboard-Installation", *w.installation)
	}
	set("Plugboard-Delivery-Attempt", w.attempt)
	return h
}

// json is headersJSON(w.header()), written in that order (the lower-case
// names sorted) without a map to walk and sort.
func (w webhookHeaders) json() json.RawMessage {
	size := 256 + len(w.userAgent) + len(w.id) + len(w.timestamp) + len(w.signature) + len(w.event) + len(w.attempt)
	if w.installation != nil {
		size += len(*w.installation)
	}
	b := make([]byte, 0, size)
	b = append(b, `{"content-type":"application/json","plugboard-delivery-attempt":`...)
	b = appendJSONString(b, w.attempt, false)
	b = append(b, `,"plugboard-event":`...)
	b = appendJSONString(b, w.event, false)
	if w.installation != nil {
		b = append(b, `,"plugboard-installation":`...)
		b = appendJSONString(b, *w.installation, false)
	}
	b = append(b, `,"user-agent":`...)
	b = appendJSONString(b, w.userAgent, false)
	b = append(b, `,"webhook-id":`...)
	b = appendJSONString(b, w.id, false)
	b = append(b, `,"webhook-signature":`...)
	b = appendJSONString(b, w.signature, false)
	b = append(b, `,"webhook-timestamp":`...)
	b = appendJSONString(b, w.timestamp, false)
	return append(b, '}')
}

// send makes one attempt of c to ep and reports it; a request stopped
// by ctx (shutdown) is deferred, not an attempt.
func (s *Sender) send(ctx context.Context, ep cachedEndpoint, c claimed) result {
	body := Envelope(c.UUID, c.EventType, c.EventCreatedAt, c.InstallationUUID, c.Data)
	now := time.Now()
	ts := now.Unix()
	wh := webhookHeaders{userAgent: s.userAgent, id: c.UUID, timestamp: strconv.FormatInt(ts, 10),
		signature: ep.signer.Sign(c.UUID, ts, body), event: c.EventType, installation: c.InstallationUUID,
		attempt: strconv.Itoa(c.Attempts + 1)}
	h := wh.header()
	reqHeaders := wh.json()
	method, to := c.destination(ep)
	r := result{c: c, body: body, attempt: Attempt{AppID: ep.ep.AppID, DeliveryID: c.ID, Number: c.Attempts + 1, URL: to,
		RequestHeaders: reqHeaders, CreatedAt: now.UTC()}}
	if to == "" {
		return r // an app without a webhook URL: the caller hands it to listen sessions
	}
	rctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, method, to, bytes.NewReader(body))
	if err != nil {
		r.attempt.ErrorClass, r.attempt.ErrorMessage = ClassConnection, err.Error()
		return r
	}
	req.Header = h
	res, err := s.client.Do(req)
	r.attempt.DurationUS = time.Since(now).Microseconds()
	if err != nil && ctx.Err() != nil {
		// We were stopped (shutdown), the partner did not fail: not an
		// attempt; the delivery goes back to the queue.
		return result{c: c, deferred: time.Second}
	}
	if err != nil {
		r.attempt.ErrorClass, r.attempt.ErrorMessage = classify(err), trimErr(err)
		s.metrics.attempt(r.attempt.ErrorClass, time.Since(now))
		return r
	}
	buf, _ := io.ReadAll(io.LimitReader(res.Body, maxBody))
	io.Copy(io.Discard, io.LimitReader(res.Body, 1<<20))
	res.Body.Close()
	r.attempt.DurationUS = time.Since(now).Microseconds()
	status := res.StatusCode
	r.attempt.ResponseStatus = &status
	r.attempt.ResponseHeaders = headersJSON(res.Header)
	r.attempt.ResponseBody = strings.ToValidUTF8(string(buf), "\uFFFD")
	r.ok = status >= 200 && status < 300
	if method == http.MethodDelete && (status == http.StatusNotFound || status == http.StatusGone) {
		// A DELETE of what the partner does not have (any more) has done
		// its work: a deprovision that arrives twice is answered 404/410.
		r.ok = true
	}
	if !r.ok {
		r.attempt.ErrorClass = ClassHTTPStatus
		r.attempt.ErrorMessage = "the endpoint answered " + res.Status
		if status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable {
			r.retryIn = retryAfter(res.Header.Get("Retry-After"), now)
		}
		r.gone = status == http.StatusGone
	}
	s.metrics.attempt(r.attempt.ErrorClass, time.Since(now))
	return r
}

// SignedGet calls an app's URL with a body-less request signed like a
// webhook (webhook-id, webhook-timestamp, webhook-signature over
// "id.timestamp." ) through the same guarded client, and returns at most
// limit bytes of a 2xx body. The signer is the app's (Endpoints.Signer).
func (s *Sender) SignedGet(ctx context.Context, signer *Signer, rawURL string, limit int64) ([]byte, error) {
	if signer == nil {
		return nil, errors.New("no signing secret")
	}
	id := "sync_" + strconv.FormatInt(time.Now().UnixNano(), 36)
	ts := time.Now().Unix()
	rctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", s.userAgent)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Webhook-Id", id)
	req.Header.Set("Webhook-Timestamp", strconv.FormatInt(ts, 10))
	req.Header.Set("Webhook-Signature", signer.Sign(id, ts, nil))
	res, err := s.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: %s", classify(err), trimErr(err))
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, limit))
	if err != nil {
		return nil, fmt.Errorf("reading response: %w", err)
	}
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return nil, fmt.Errorf("the sync URL answered %s", res.Status)
	}
	return body, nil
}

// trimErr is err's message, at most 500 bytes of it.
func trimErr(err error) string {
	msg := err.Error()
	if len(msg) > 500 {
		msg = msg[:500]
	}
	return msg
}

// classify names why a request failed.
func classify(err error) string {
	var (
		dnsErr  *net.DNSError
		certErr *tls.CertificateVerificationError
		unknown x509.UnknownAuthorityError
		hostErr x509.HostnameError
		recErr  tls.RecordHeaderError
		netErr  net.Error
		urlErr  *url.Error
	)
	switch {
	case errors.Is(err, errBlocked):
		return ClassBlocked
	case errors.As(err, &dnsErr):
		return ClassDNS
	case errors.As(err, &certErr), errors.As(err, &unknown), errors.As(err, &hostErr), errors.As(err, &recErr):
		return ClassTLS
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return ClassTimeout
	case errors.As(err, &urlErr) && strings.Contains(urlErr.Err.Error(), "tls"):
		return ClassTLS
	}
	return ClassConnection
}

// retryAfter reads seconds or an HTTP date, bounded to [1 s, 1 h].
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
		d = time.Duration(n) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, time.Second), time.Hour)
}
