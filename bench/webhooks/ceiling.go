package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/plugboard/plugboard/webhooks"
)

// ceilingApp is the sink index the ceiling's requests are addressed to.
const ceilingApp = 1 << 30

// ceilingInfo is the bare ceiling of this box, measured in the same process
// and minutes as the run: signed 1 KiB POSTs over loopback keep-alive from
// 64 goroutines to the same sink, which does for each what it does for a
// delivery. Nothing of Plugboard runs in it but its signer. It is measured
// twice, before the window and after it (Samples), and pooled: on a shared
// virtual machine one 5 s sample of the ceiling varied by a third within
// minutes (34–47 µs of CPU per request), more than the pipeline did.
type ceilingInfo struct {
	Seconds          float64         `json:"seconds"`
	Goroutines       int             `json:"goroutines"`
	Requests         int64           `json:"requests"`
	PerSec           float64         `json:"perSecond"`
	P50              float64         `json:"roundTripP50Ms"`
	P99              float64         `json:"roundTripP99Ms"`
	ProcessCPUPerReq float64         `json:"processCpuMsPerRequest"` // this process: client and sink
	BoxCPUPerReq     float64         `json:"boxCpuMsPerRequest"`     // every process on the machine
	OtherCPUSeconds  float64         `json:"otherCpuSeconds"`        // machine busy time not this process's (noise)
	Samples          []ceilingSample `json:"samples"`
}

// ceilingSample is one measurement of the ceiling (before or after the
// window).
type ceilingSample struct {
	When             string  `json:"when"`
	Seconds          float64 `json:"seconds"`
	Requests         int64   `json:"requests"`
	PerSec           float64 `json:"perSecond"`
	ProcessCPUPerReq float64 `json:"processCpuMsPerRequest"`
	cpu, busy        time.Duration
	rtts             []int64
}

// pool is the ceiling of samples together: requests, CPU and round trips
// summed over all of them.
func pool(samples ...ceilingSample) *ceilingInfo {
	c := &ceilingInfo{Goroutines: ceilingGoroutines, Samples: samples}
	var cpu, busy time.Duration
	var rtts []int64
	for _, s := range samples {
		c.Seconds += s.Seconds
		c.Requests += s.Requests
		cpu, busy = cpu+s.cpu, busy+s.busy
		rtts = append(rtts, s.rtts...)
	}
	dist := percentiles(rtts)
	c.P50, c.P99 = dist.P50, dist.P99
	if c.Seconds > 0 {
		c.PerSec = float64(c.Requests) / c.Seconds
	}
	if c.Requests > 0 {
		c.ProcessCPUPerReq = cpu.Seconds() * 1000 / float64(c.Requests)
		c.BoxCPUPerReq = busy.Seconds() * 1000 / float64(c.Requests)
	}
	c.OtherCPUSeconds = max(0, (busy - cpu).Seconds())
	return c
}

const ceilingGoroutines = 64

// measureCeiling runs the ceiling for d; when names the sample.
func measureCeiling(ctx context.Context, sk *sink, d time.Duration, when string) (ceilingSample, error) {
	const goroutines = ceilingGoroutines
	sec := webhooks.NewSecret()
	signer, err := webhooks.NewSigner([]string{sec})
	if err != nil {
		return ceilingSample{}, err
	}
	if err := sk.setSecret(ceilingApp, sec); err != nil {
		return ceilingSample{}, err
	}
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{Proxy: nil, MaxIdleConns: 2 * goroutines,
		MaxIdleConnsPerHost: 2 * goroutines, IdleConnTimeout: time.Minute, DisableCompression: true}}
	defer hc.CloseIdleConnections()
	url := sk.URL + "/app/" + strconv.Itoa(ceilingApp)
	pad := strings.Repeat("x", 1024-200)

	var (
		n, errs atomic.Int64
		mu      sync.Mutex
		rtts    []int64
		wg      sync.WaitGroup
		stop    atomic.Bool
	)
	send := func(seq int64) error {
		id := uuid.NewString()
		now := time.Now()
		body := fmt.Appendf(nil, `{"id":%q,"type":"bench.ping","timestamp":%q,"installation":null,"data":{"seq":%d,"sentAt":%d,"pad":%q}}`,
			id, now.UTC().Format(time.RFC3339Nano), seq, now.UnixNano(), pad)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			return err
		}
		ts := now.Unix()
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Webhook-Id", id)
		req.Header.Set("Webhook-Timestamp", strconv.FormatInt(ts, 10))
		req.Header.Set("Webhook-Signature", signer.Sign(id, ts, body))
		req.Header.Set("Plugboard-Event", "bench.ping")
		res, err := hc.Do(req)
		if err != nil {
			return err
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", res.StatusCode)
		}
		return nil
	}
	// Warm the connections, then measure.
	for i := range goroutines {
		if err := send(int64(-1 - i)); err != nil {
			return ceilingSample{}, err
		}
	}
	cpu0, busy0, t0 := selfCPU(), machineBusy(), time.Now()
	for g := range goroutines {
		wg.Go(func() {
			pprof.Do(ctx, roleLoad, func(ctx context.Context) {
				var mine []int64
				for i := int64(g); !stop.Load() && ctx.Err() == nil; i += goroutines {
					start := time.Now()
					if err := send(i); err != nil {
						errs.Add(1)
						continue
					}
					mine = append(mine, time.Since(start).Microseconds())
					n.Add(1)
				}
				mu.Lock()
				rtts = append(rtts, mine...)
				mu.Unlock()
			})
		})
	}
	time.Sleep(d)
	stop.Store(true)
	elapsed := time.Since(t0)
	cpu1, busy1 := selfCPU(), machineBusy()
	wg.Wait()
	if e := errs.Load(); e > 0 && n.Load() == 0 {
		return ceilingSample{}, fmt.Errorf("%d requests failed, none succeeded", e)
	}
	c := ceilingSample{When: when, Seconds: elapsed.Seconds(), Requests: n.Load(), cpu: cpu1 - cpu0, busy: busy1 - busy0, rtts: rtts}
	c.PerSec = float64(c.Requests) / elapsed.Seconds()
	if c.Requests > 0 {
		c.ProcessCPUPerReq = c.cpu.Seconds() * 1000 / float64(c.Requests)
	}
	return c, nil
}
