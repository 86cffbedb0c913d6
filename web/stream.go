package web

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
)

// streams ends long-lived responses when the server shuts down.
type streams struct {
	once   sync.Once
	ctx    context.Context
	cancel context.CancelFunc
}

func (st *streams) context() context.Context {
	st.once.Do(func() { st.ctx, st.cancel = context.WithCancel(context.Background()) })
	return st.ctx
}

// CloseStreams ends every open stream; app calls it when HTTP shuts down.
func (s *Server) CloseStreams() {
	s.streams.context()
	s.streams.cancel()
}

// deliveryStream is GET /api/0/apps/{app_slug}/delivery-stream/: server-sent
// events, one "delivery" event per webhook sent to the app while the stream
// is open, with the exact headers and body (what `plugboard listen`
// forwards), and a comment every 15 s to keep proxies from closing it.
// Every stream of the process is served from one Redis subscription
// (webhooks.Listeners); open streams are capped per user and per app
// (429 too_many_streams) and per process (503), and a stream the hub
// closes (it fell behind, or Redis went away) ends with a "close" event,
// as at shutdown: the client connects again.
func (s *Server) deliveryStream(c echo.Context) error {
	ctx, cancel := context.WithCancel(c.Request().Context())
	defer cancel()
	go func() {
		select {
		case <-s.streams.context().Done():
			cancel()
		case <-ctx.Done():
		}
	}()
	ch, err := s.opts.Deliveries.ListenDeliveries(ctx, actor(c), c.Param("app_slug"))
	if err != nil {
		return err
	}
	w := c.Response()
	rc := http.NewResponseController(w.Writer)
	_ = rc.SetWriteDeadline(time.Time{}) // a stream outlives the server's write timeout
	w.Header().Set(echo.HeaderContentType, "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, ": listening\n\n")
	_ = rc.Flush()
	ping := time.NewTicker(15 * time.Second)
	defer ping.Stop()
	for {
		select {
		case <-ctx.Done():
			fmt.Fprint(w, "event: close\ndata: {}\n\n")
			_ = rc.Flush()
			return nil
		case <-ping.C:
			fmt.Fprint(w, ": ping\n\n")
		case f, ok := <-ch:
			if !ok {
				fmt.Fprint(w, "event: close\ndata: {}\n\n")
				_ = rc.Flush()
				return nil
			}
			b, _ := json.Marshal(f)
			fmt.Fprintf(w, "id: %s\nevent: delivery\ndata: %s\n\n", f.DeliveryID, b)
		}
		if err := rc.Flush(); err != nil {
			return nil
		}
	}
}
