package plugboard

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// StreamedDelivery is one webhook the platform sent to an app, as its
// delivery stream carries it: the exact headers and body, signed as they
// were sent, so a local server can verify them as the real endpoint would.
type StreamedDelivery struct {
	DeliveryID string            `json:"deliveryId"` // the webhook-id
	EventType  string            `json:"eventType"`
	Attempt    int               `json:"attempt"`
	Headers    map[string]string `json:"headers"`
	Body       string            `json:"body"`
}

// ErrStreamClosed is what StreamDeliveries returns when the platform closes
// the stream (it shuts down); connecting again later is the remedy.
var ErrStreamClosed = errors.New("plugboard: the platform closed the delivery stream")

// maxStreamEvent bounds one server-sent event of the delivery stream.
const maxStreamEvent = 8 << 20

// StreamDeliveries follows the app's delivery stream (server-sent events of
// GET /api/0/apps/{app}/delivery-stream/, what `plugboard listen` forwards):
// it calls open once the stream is open, then each for every delivery sent
// to the app meanwhile, in order, until ctx ends or the connection does.
// It needs a user's token from the app's organization ([WithToken] with a
// pbu_ token).
//
// It returns an [*APIError] when the API refuses the stream, ErrStreamClosed
// when the platform closes it, and otherwise the connection's error
// (io.ErrUnexpectedEOF when it ends without a word). The stream is not
// subject to the HTTP client's Timeout.
func (c *Client) StreamDeliveries(ctx context.Context, appSlug string, open func(), each func(StreamedDelivery)) error {
	u := c.url("/apps/" + esc(appSlug) + "/delivery-stream/")
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fmt.Errorf("plugboard: %w", err)
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("User-Agent", c.userAgent)
	if c.auth != nil {
		if err := c.auth(req); err != nil {
			return err
		}
	}
	hc := *c.hc
	hc.Timeout = 0 // a stream lasts as long as ctx
	res, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("plugboard: streaming the deliveries of %s: %w", appSlug, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(res.Body, maxResponse))
		return apiError(res, body)
	}
	if open != nil {
		open()
	}
	return readDeliveryStream(res.Body, each)
}

// readDeliveryStream reads server-sent events from r, calling each for
// every "delivery" event; it returns at a "close" event or the end of r.
func readDeliveryStream(r io.Reader, each func(StreamedDelivery)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxStreamEvent)
	var event, data string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			switch event {
			case "delivery":
				var d StreamedDelivery
				if json.Unmarshal([]byte(data), &d) == nil {
					each(d)
				}
			case "close":
				return ErrStreamClosed
			}
			event, data = "", ""
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data = strings.TrimPrefix(line, "data: ")
		}
	}
	if err := sc.Err(); err != nil {
		return err // the connection's own words: a reset, ctx's end
	}
	return io.ErrUnexpectedEOF
}
