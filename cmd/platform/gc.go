package platform

import (
	"log/slog"
	"os"
	"runtime/debug"
)

// gcPercent is the platform's GOGC when the environment sets none. Its
// live heap is small (under the delivery log read load with 10 million
// attempts stored, ~17 MB), so at Go's default of 100 it collected five
// times a second; each concurrent mark ran 10–70 ms of wall time on two
// cores and took a share of them from every request and timer, which was
// most of the read load's p99 (28–57 ms against 15 ms at 400, schedule
// lag of the bench's in-process load 42–64 ms against 0.1 ms) and a
// quarter of the platform's CPU. At 400 the heap peaks near 5× the live
// one: ~90 MB instead of ~35.
const gcPercent = 400

// tuneGC sets the collector's target unless GOGC does (an operator's
// choice wins; GOMEMLIMIT, when set, still caps the heap below it). It is
// process-wide: only New, the composition root, calls it.
func tuneGC(log *slog.Logger) {
	if _, set := os.LookupEnv("GOGC"); set {
		return
	}
	if prev := debug.SetGCPercent(gcPercent); prev != gcPercent {
		log.Debug("GC target set", "gogc", gcPercent, "was", prev)
	}
}
