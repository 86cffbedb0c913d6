package web_test

import (
	"bufio"
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/plugboard/plugboard/app/testenv"
	"github.com/plugboard/plugboard/config"
)

const streamPath = "/api/0/apps/hook-app/delivery-stream/"

// stream is an open delivery stream, read line by line.
type stream struct {
	res  *http.Response
	read *bufio.Reader
	stop context.CancelFunc
}

// openStream opens the hook app's delivery stream with the credentials
// set on a request by auth, and returns it once the platform said it
// listens; a refusal is returned as the response, with stream nil.
func openStream(t *testing.T, base string, auth func(*http.Request)) (*stream, *http.Response) {
	t.Helper()
	ctx, stop := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", base+streamPath, nil)
	auth(req)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		stop()
		t.Fatal(err)
	}
	if res.StatusCode != 200 {
		stop()
		res.Body.Close()
		return nil, res
	}
	s := &stream{res: res, read: bufio.NewReader(res.Body), stop: stop}
	t.Cleanup(s.close)
	if line, err := s.read.ReadString('\n'); err != nil || line != ": listening\n" {
		t.Fatalf("stream began %q, %v", line, err)
	}
	return s, res
}

func (s *stream) close() { s.stop(); s.res.Body.Close() }

// next returns the next event's name and data, skipping comments.
func (s *stream) next() (event, data string, err error) {
	for {
		line, err := s.read.ReadString('\n')
		if err != nil {
			return event, data, err
		}
		switch line = strings.TrimSuffix(line, "\n"); {
		case line == "" && event != "":
			return event, data, nil
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data = strings.TrimPrefix(line, "data: ")
		}
	}
}

// refusedStream asks for a stream that should be refused, through c (so
// the answer is checked against the OpenAPI document); one that opens
// fails the test after a while instead of hanging it.
func refusedStream(c *client) *response {
	c.t.Helper()
	c.http.Timeout = 10 * time.Second
	defer func() { c.http.Timeout = 0 }()
	return c.do("GET", streamPath, nil)
}

// nextWithin is next, giving up after d.
func (s *stream) nextWithin(d time.Duration) (event string, err error) {
	type got struct {
		event string
		err   error
	}
	c := make(chan got, 1)
	go func() { e, _, err := s.next(); c <- got{e, err} }()
	select {
	case g := <-c:
		return g.event, g.err
	case <-time.After(d):
		s.close()
		return "", errors.New("nothing within " + d.String())
	}
}

func streamLimits(perUser, perApp, max int) func(*config.Config) {
	return func(c *config.Config) { c.StreamsPerUser, c.StreamsPerApp, c.StreamsMax = perUser, perApp, max }
}

// redisClients counts the connections a Redis server has.
func redisClients(t *testing.T, rdb *redis.Client) int {
	t.Helper()
	list, err := rdb.ClientList(context.Background()).Result()
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(list, "\n")
}

// Every stream of a process is served from one Redis subscription: 100
// streams made 100 Redis connections, now none besides the one. A delivery
// reaches every open stream of its app.
func TestDeliveryStreamsShareOneSubscription(t *testing.T) {
	addr := testenv.RedisServer(t)
	h := newHooks(t, func(c *config.Config) { c.RedisURL = "redis://" + addr + "/0" }, streamLimits(1000, 1000, 1000))
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	const n = 100
	before := redisClients(t, rdb)
	streams := make([]*stream, n)
	for i := range streams {
		s, res := openStream(t, h.p.URL, bearerAuth(h.dev.token))
		if s == nil {
			t.Fatalf("stream %d: %d", i, res.StatusCode)
		}
		streams[i] = s
	}
	after := redisClients(t, rdb)
	t.Logf("Redis clients: %d before, %d with %d streams open", before, after, n)
	if after-before > 3 {
		t.Errorf("%d streams took %d more Redis connections", n, after-before)
	}

	time.Sleep(1100 * time.Millisecond) // the dispatcher sees the sessions (it caches for 1 s)
	h.publish(t, "Heard by all")
	var wg sync.WaitGroup
	heard := make([]bool, n)
	for i, s := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				event, data, err := s.next()
				if err != nil {
					return
				}
				if event == "delivery" && strings.Contains(data, "Heard by all") {
					heard[i] = true
					return
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		for _, s := range streams {
			s.close()
		}
		<-done
	}
	missed := 0
	for _, ok := range heard {
		if !ok {
			missed++
		}
	}
	if missed > 0 {
		t.Errorf("%d of %d streams never got the delivery", missed, n)
	}
}

// Open streams are capped per user and per app (429 too_many_streams,
// with Retry-After); a closed stream's place is free again.
func TestDeliveryStreamsAreCapped(t *testing.T) {
	h := newHooks(t, streamLimits(2, 3, 1000))
	app := func(r *http.Request) { r.SetBasicAuth(h.clientID, h.app.ClientSecret) }
	first, _ := openStream(t, h.p.URL, bearerAuth(h.dev.token))
	if s, res := openStream(t, h.p.URL, bearerAuth(h.dev.token)); s == nil {
		t.Fatalf("second stream: %d", res.StatusCode)
	}
	// The third of one user: refused, as the document says.
	res := refusedStream(h.dev)
	p := res.problem(t, 429, "too_many_streams")
	if res.Header.Get("Retry-After") == "" || !strings.Contains(p.Detail, "close one") {
		t.Errorf("Retry-After %q, detail %q", res.Header.Get("Retry-After"), p.Detail)
	}
	// The app itself is another owner, but the app is at its cap then.
	if s, res := openStream(t, h.p.URL, app); s == nil {
		t.Fatalf("the app's stream: %d", res.StatusCode)
	}
	if s, res := openStream(t, h.p.URL, app); s != nil || res.StatusCode != 429 {
		t.Fatalf("a fourth stream of the app: %v", res.StatusCode)
	}
	// Closing one lets the next in.
	first.close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s, res := openStream(t, h.p.URL, bearerAuth(h.dev.token))
		if s != nil {
			break
		}
		if res.StatusCode != 429 || time.Now().After(deadline) {
			t.Fatalf("after closing one: %d", res.StatusCode)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A process takes so many streams in all; past that, and while Redis is
// away, new streams are 503 unavailable with Retry-After, not 500; open
// ones end with a close event; when Redis is back, streams open again.
func TestDeliveryStreamsUnavailable(t *testing.T) {
	t.Run("the process is full", func(t *testing.T) {
		h := newHooks(t, streamLimits(10, 50, 1))
		openStream(t, h.p.URL, bearerAuth(h.dev.token))
		res := refusedStream(h.dev)
		res.problem(t, 503, "unavailable")
		if res.Header.Get("Retry-After") == "" {
			t.Error("no Retry-After")
		}
	})
	t.Run("Redis is away", func(t *testing.T) {
		rd := testenv.NewProxy(t, testenv.RedisServer(t))
		h := newHooks(t, func(c *config.Config) { c.RedisURL = "redis://" + rd.Addr() + "/0" })
		open, _ := openStream(t, h.p.URL, bearerAuth(h.dev.token))
		rd.Cut()
		if event, err := open.nextWithin(15 * time.Second); event != "close" {
			t.Errorf("the open stream got %q, %v; want a close event", event, err)
		}
		res := refusedStream(h.dev)
		res.problem(t, 503, "unavailable")
		if res.Header.Get("Retry-After") == "" {
			t.Error("no Retry-After")
		}
		rd.Restore(t)
		deadline := time.Now().Add(20 * time.Second)
		for {
			s, res := openStream(t, h.p.URL, bearerAuth(h.dev.token))
			if s != nil {
				break
			}
			if res.StatusCode != 503 || time.Now().After(deadline) {
				t.Fatalf("after Redis came back: %d", res.StatusCode)
			}
			time.Sleep(200 * time.Millisecond)
		}
	})
}
