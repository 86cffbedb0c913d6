package marketplace

import "testing"

// Each line's commission is rounded half to even, and what is left is the
// partner's: gross = commission + net, always.
func TestSplitCommissionRoundsHalfToEven(t *testing.T) {
	for _, tc := range []struct {
		gross           int64
		bps             int
		commission, net int64
	}{
		{1, 5000, 0, 1}, // 0.5 → 0
		{3, 5000, 2, 1}, // 1.5 → 2
		{5, 5000, 2, 3}, // 2.5 → 2
		{1005, 2000, 201, 804},
		{2999, 2000, 600, 2399}, // 599.8
		{1234, 3333, 411, 823},  // 411.2922
		{10, 1250, 1, 9},        // 1.25
		{4500, 0, 0, 4500},
		{4500, 10000, 4500, 0},
		{0, 2000, 0, 0},
	} {
		c, n := splitCommission(tc.gross, tc.bps)
		if c != tc.commission || n != tc.net || c+n != tc.gross {
			t.Errorf("%d at %d bps: %d + %d, want %d + %d", tc.gross, tc.bps, c, n, tc.commission, tc.net)
		}
	}
}

func TestParseCommission(t *testing.T) {
	for in, want := range map[string]int{"0": 0, "20": 2000, "12.5": 1250, "12.50": 1250, "0.01": 1, "100": 10000, "100.00": 10000} {
		if got, err := ParseCommission(in); err != nil || got != want {
			t.Errorf("%q: %d (%v), want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "100.01", "101", "-1", "1.234", "12.", ".5", "1e2", "20%", "007"} {
		if _, err := ParseCommission(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}
