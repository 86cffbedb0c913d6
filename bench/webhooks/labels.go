package main

import (
	"bytes"
	"runtime/pprof"
	"time"

	"github.com/google/pprof/profile"
)

// The harness's own goroutines carry a profiler label, so that the CPU
// profile of the window (always taken) splits this process's CPU between
// the platform and the harness: the sink that plays the partners, and the
// load (publishers, readers, the ceiling's senders). Goroutines inherit
// labels, so the sink's connection goroutines and the load's HTTP
// transports carry them too; everything else is the platform's.
var (
	roleSink = pprof.Labels("bench", "sink")
	roleLoad = pprof.Labels("bench", "load")
)

// Process roles of a profile.
const (
	rolePlatform = "platform"
	roleSinkName = "sink"
	roleLoadName = "load"
)

// cpuByRole sums a CPU profile's samples by the bench label; unlabelled
// samples are the platform's.
func cpuByRole(raw []byte) map[string]time.Duration {
	out := map[string]time.Duration{}
	p, err := profile.Parse(bytes.NewReader(raw))
	if err != nil {
		return out
	}
	idx := -1
	for i, st := range p.SampleType {
		if st.Type == "cpu" {
			idx = i
		}
	}
	if idx < 0 {
		return out
	}
	for _, s := range p.Sample {
		role := rolePlatform
		if v := s.Label["bench"]; len(v) > 0 {
			role = v[0]
		}
		out[role] += time.Duration(s.Value[idx])
	}
	return out
}
