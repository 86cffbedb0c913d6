package plugboard_test

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/plugboard/plugboard/sdk/plugboard"
)

// FuzzVerifyFresh runs webhook requests through the SDK's verifier and the
// Standard Webhooks reference library: the SDK never accepts what the
// reference refuses, and accepts every request the reference signed and
// accepts. ts is the timestamp header, sig the signature header; when
// signed, the reference's signature of the message goes before sig.
func FuzzVerifyFresh(f *testing.F) {
	now := time.Now().Unix()
	f.Add(msgID, "0", "", []byte(body), true)
	f.Add(msgID, "0", "v1,bm90IGEgc2lnbmF0dXJl", []byte(body), false)
	f.Add("", "0", "", []byte(body), true)
	f.Add(msgID, "-400", "", []byte(body), true)
	f.Add(msgID, "+400", "", []byte(body), true)
	f.Add(msgID, "x", "v2,abc", []byte{}, false)
	f.Add(msgID, strconv.FormatInt(now, 10), "v1,", []byte("\xff\x00"), false)
	f.Add("id with spaces", "0", "v1,a v1,b", []byte("{}"), true)
	f.Add(msgID, "99999999999999999999", "", []byte(body), true)
	wh, err := standardwebhooks.NewWebhook(secretA)
	if err != nil {
		f.Fatal(err)
	}
	v, err := plugboard.NewVerifier(secretA)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, id, ts, sig string, payload []byte, signed bool) {
		at := time.Now()
		// Small numbers are offsets from now, so that fresh messages are
		// reached; the rest is sent as it is.
		stamp := ts
		if off, err := strconv.ParseInt(ts, 10, 64); err == nil && off > -100000 && off < 100000 {
			if d := time.Duration(abs(off)) * time.Second; d > plugboard.DefaultTolerance-5*time.Second && d < plugboard.DefaultTolerance+5*time.Second {
				return // too near the edge for two clocks to agree
			}
			stamp = strconv.FormatInt(at.Unix()+off, 10)
		}
		h := http.Header{}
		h.Set("webhook-id", id)
		h.Set("webhook-timestamp", stamp)
		if signed {
			if sec, err := strconv.ParseInt(stamp, 10, 64); err == nil {
				if s, err := wh.Sign(id, time.Unix(sec, 0), payload); err == nil {
					if sig != "" {
						s += " " + sig
					}
					sig = s
				}
			}
		}
		h.Set("webhook-signature", sig)
		ref := wh.Verify(payload, h)
		got := v.Verify(h, payload)
		if got == nil && ref != nil {
			t.Fatalf("SDK accepted what the reference refuses (%v): id %q ts %q sig %q", ref, id, stamp, sig)
		}
		if signed && ref == nil && got != nil {
			t.Fatalf("SDK refused (%v) what the reference signed and accepts: id %q ts %q sig %q", got, id, stamp, sig)
		}
	})
}

func abs(n int64) int64 {
	if n < 0 {
		return -n
	}
	return n
}
