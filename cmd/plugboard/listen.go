package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	sdk "github.com/plugboard/plugboard/sdk/plugboard"
)

func cmdListen(ctx context.Context, args []string, out, errOut io.Writer, getenv env) error {
	fs := flags("listen", "listen --app SLUG --forward-to URL [--api URL] [--token TOKEN]", out)
	api := addAPIFlags(fs, getenv)
	app := fs.String("app", "", "the app whose deliveries to forward (required)")
	to := fs.String("forward-to", "", "where to forward each delivery, such as http://localhost:3000/webhooks (required)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *app == "" || *to == "" {
		return fs.usageErr("listen: --app and --forward-to are required")
	}
	if u, err := url.Parse(*to); err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return fs.usageErr("listen: --forward-to must be an http(s) URL, got %q", *to)
	}
	if api.token == "" {
		return errors.New("listen: 401 no_token: pass --token or set PLUGBOARD_API_TOKEN")
	}
	c, err := api.client()
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	f := &forwarder{to: *to, out: out, http: &http.Client{Timeout: 30 * time.Second}}
	// Each state change is said once: the platform never answered (cannot
	// reach), the connection was lost, it is back. Between attempts the
	// wait grows from 0.5 s to 30 s, so a platform that is down is not
	// hammered and the terminal is not flooded.
	connected, everConnected, warned := false, false, false
	var wait backoff
	for ctx.Err() == nil {
		err := c.StreamDeliveries(ctx, *app, func() {
			if everConnected {
				fmt.Fprintln(out, "Reconnected.")
			} else {
				fmt.Fprintf(out, "Ready. Forwarding deliveries of %s to %s (Ctrl-C to stop).\n", *app, *to)
			}
			connected, everConnected = true, true
			wait.reset()
		}, func(d sdk.StreamedDelivery) { f.forward(ctx, d) })
		if ctx.Err() != nil {
			break
		}
		err = cliError(err)
		var pe *problemError
		if errors.As(err, &pe) && pe.Status < 500 {
			return fmt.Errorf("listen: %w", err)
		}
		switch {
		case connected:
			fmt.Fprintf(out, "Lost the connection to %s (%v); reconnecting…\n", api.base, err)
			connected = false
		case !everConnected && !warned:
			fmt.Fprintf(out, "Cannot reach %s (%v); retrying until it answers (Ctrl-C to stop)…\n", api.base, err)
			warned = true
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait.next()):
		}
	}
	total, ok := f.total.Load(), f.ok.Load()
	fmt.Fprintf(out, "Forwarded %d deliveries: %d answered 2xx, %d did not.\n", total, ok, total-ok)
	return nil
}

// forwarder posts each streamed delivery to the local URL, with its signed
// headers, and prints one line per delivery.
type forwarder struct {
	to        string
	out       io.Writer
	http      *http.Client
	total, ok atomic.Int64
}

func (f *forwarder) forward(ctx context.Context, d sdk.StreamedDelivery) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.to, strings.NewReader(d.Body))
	if err != nil {
		return
	}
	for k, v := range d.Headers {
		req.Header.Set(k, v)
	}
	start := time.Now()
	res, err := f.http.Do(req)
	f.total.Add(1)
	status := "error: " + fmt.Sprint(err)
	if err == nil {
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		status = fmt.Sprint(res.StatusCode)
		if res.StatusCode < 300 {
			f.ok.Add(1)
		}
	}
	fmt.Fprintf(f.out, "%s  %-24s → %s  %4dms  %s\n", time.Now().Format("15:04:05"), d.EventType, status, time.Since(start).Milliseconds(), d.DeliveryID)
}

// backoff is the wait between reconnection attempts: exponential from
// backoffMin to backoffMax, each wait drawn at random from its upper half
// so that many listeners do not retry in step.
type backoff struct{ n int }

const (
	backoffMin = 500 * time.Millisecond
	backoffMax = 30 * time.Second
)

// next is the wait before the next attempt.
func (b *backoff) next() time.Duration {
	d := backoffMax
	if b.n < 16 && backoffMin<<b.n < backoffMax {
		d = backoffMin << b.n
	}
	b.n++
	return d/2 + rand.N(d/2+1)
}

// reset starts again from the shortest wait, once connected.
func (b *backoff) reset() { b.n = 0 }
