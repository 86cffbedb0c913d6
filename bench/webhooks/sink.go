package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/plugboard/plugboard/sdk/plugboard"
)

// sink is the partners' webhook endpoints, on loopback: /app/<i> is app i.
// It counts every request, checks the Standard Webhooks signature of one in
// verifyEvery (and of every lifecycle webhook), and records, per webhook-id,
// when it arrived and how long after the publisher sent the event.
type sink struct {
	srv         *http.Server
	URL         string
	verifyEvery uint64

	keysMu sync.RWMutex
	keys   map[int]*plugboard.Verifier // app index → its secret's verifier

	n         atomic.Uint64 // every request, for sampling
	pings     atomic.Int64  // bench.ping requests
	lifecycle atomic.Int64  // every other event type
	verified  atomic.Int64
	badSig    atomic.Int64
	badBody   atomic.Int64

	t0          atomic.Int64 // unix nanos the measurement window opens; 0 before
	lastReceipt atomic.Int64 // unix nanos of the latest ping
	perSecond   []atomic.Int64

	mu   sync.Mutex
	seen map[string]int64 // webhook-id → receipt, unix nanos
	dups int64
	lat  []int64 // publish-to-delivery, microseconds
}

func newSink(maxSeconds int, verifyEvery int) (*sink, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("sink: %w", err)
	}
	s := &sink{URL: "http://" + l.Addr().String(), keys: map[int]*plugboard.Verifier{}, seen: map[string]int64{},
		perSecond: make([]atomic.Int64, maxSeconds)}
	if verifyEvery > 0 {
		s.verifyEvery = uint64(verifyEvery)
	}
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 5 * time.Minute}
	go pprof.Do(context.Background(), roleSink, func(context.Context) { _ = s.srv.Serve(l) })
	return s, nil
}

// setSecret registers app i's whsec_ secret.
func (s *sink) setSecret(i int, secret string) error {
	v, err := plugboard.NewVerifier(secret)
	if err != nil {
		return fmt.Errorf("app %d: %w", i, err)
	}
	s.keysMu.Lock()
	s.keys[i] = v
	s.keysMu.Unlock()
	return nil
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func (s *sink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	defer bufPool.Put(buf)
	if _, err := io.Copy(buf, r.Body); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	body := buf.Bytes()
	id := r.Header.Get("Webhook-Id")
	ping := r.Header.Get("Plugboard-Event") == "bench.ping"
	n := s.n.Add(1)
	if !ping || (s.verifyEvery > 0 && n%s.verifyEvery == 0) {
		if s.verify(r, id, body) {
			s.verified.Add(1)
		} else {
			s.badSig.Add(1)
		}
	}
	if !ping {
		s.lifecycle.Add(1)
		w.WriteHeader(http.StatusOK)
		return
	}
	sentAt, ok := sentAt(body)
	if !ok {
		s.badBody.Add(1)
	}
	s.pings.Add(1)
	for t := now.UnixNano(); ; {
		if l := s.lastReceipt.Load(); l >= t || s.lastReceipt.CompareAndSwap(l, t) {
			break
		}
	}
	if t0 := s.t0.Load(); t0 != 0 {
		if sec := (now.UnixNano() - t0) / int64(time.Second); sec >= 0 && sec < int64(len(s.perSecond)) {
			s.perSecond[sec].Add(1)
		}
	}
	s.mu.Lock()
	if _, dup := s.seen[id]; dup {
		s.dups++
	} else {
		s.seen[id] = now.UnixNano()
		if ok {
			s.lat = append(s.lat, (now.UnixNano()-sentAt)/1000)
		}
	}
	s.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

// verify checks the Standard Webhooks signature as a partner would, with
// the SDK: HMAC-SHA256 of "id.timestamp.body" with the app's key, one of
// the space-separated "v1,<base64>" values, and a timestamp within five
// minutes.
func (s *sink) verify(r *http.Request, id string, body []byte) bool {
	i, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/app/"))
	if err != nil {
		return false
	}
	s.keysMu.RLock()
	v := s.keys[i]
	s.keysMu.RUnlock()
	return v != nil && id != "" && v.Verify(r.Header, body) == nil
}

// sentAt finds data.sentAt in the envelope without decoding it all (the
// data comes back from jsonb, so `"sentAt": 123` with a space).
func sentAt(body []byte) (int64, bool) {
	const key = `"sentAt":`
	i := bytes.Index(body, []byte(key))
	if i < 0 {
		return 0, false
	}
	rest := bytes.TrimLeft(body[i+len(key):], " ")
	j := 0
	for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
		j++
	}
	v, err := strconv.ParseInt(string(rest[:j]), 10, 64)
	return v, err == nil
}

// reset forgets every ping (after warm-up).
func (s *sink) reset() {
	s.mu.Lock()
	s.seen = map[string]int64{}
	s.lat = nil
	s.dups = 0
	s.pings.Store(0)
	s.mu.Unlock()
}

// snapshot returns the latencies and the ids received.
func (s *sink) snapshot() (lat []int64, seen map[string]int64, dups int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	seen = make(map[string]int64, len(s.seen))
	for k, v := range s.seen {
		seen[k] = v
	}
	return append([]int64(nil), s.lat...), seen, s.dups
}

func (s *sink) close() { _ = s.srv.Close() }
