package marketplace

import (
	"math/big"
	"math/rand/v2"
	"testing"
)

// prorate rounds half to even, exactly, where a line's figures are large.
func TestProrateRoundsHalfToEven(t *testing.T) {
	for _, c := range []struct{ amount, part, whole, want int64 }{
		{1, 1, 2, 0}, {3, 1, 2, 2}, {5, 1, 2, 2}, {7, 1, 2, 4}, // ties: to the even neighbour
		{1000, 1, 3, 333}, {1000, 2, 3, 667}, // no ties: to the nearest
		{999, 2678400, 2678400, 999}, {0, 5, 7, 0}, {5, 0, 7, 0},
		{1 << 50, 2678400, 2678400 * 12, (1 << 50) / 12}, // a yearly plan's month, without overflowing
	} {
		if got := prorate(c.amount, c.part, c.whole); got != c.want {
			t.Errorf("prorate(%d, %d, %d) = %d, want %d", c.amount, c.part, c.whole, got, c.want)
		}
	}
	// And against exact rationals, rounded by comparing with one half.
	r := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		whole := 1 + r.Int64N(40_000_000)
		part, amount := r.Int64N(whole+1), r.Int64N(1<<50)
		if r.IntN(4) == 0 {
			whole, part, amount = 2*(1+r.Int64N(1000)), 0, r.Int64N(1000) // small, many ties
			part = whole / 2
		}
		x := new(big.Rat).SetFrac(new(big.Int).Mul(big.NewInt(amount), big.NewInt(part)), big.NewInt(whole))
		fl := new(big.Int).Quo(x.Num(), x.Denom())
		d := new(big.Rat).Sub(x, new(big.Rat).SetInt(fl)).Cmp(big.NewRat(1, 2))
		if d > 0 || d == 0 && fl.Bit(0) == 1 {
			fl.Add(fl, big.NewInt(1))
		}
		if got := prorate(amount, part, whole); got != fl.Int64() {
			t.Fatalf("prorate(%d, %d, %d) = %d, want %d", amount, part, whole, got, fl.Int64())
		}
	}
}

func TestAmountsUseTheCurrencysDigits(t *testing.T) {
	for _, c := range []struct {
		in, code string
		minor    int64
		out      string
		bad      bool
	}{
		{"45", "USD", 4500, "45.00", false}, {"45.5", "USD", 4550, "45.50", false}, {"0.07", "USD", 7, "0.07", false},
		{"4500", "JPY", 4500, "4500", false}, {"4500.00", "JPY", 4500, "4500", false}, {"1.5", "KWD", 1500, "1.500", false},
		{"9.999", "USD", 0, "", true}, {"9.5", "JPY", 0, "", true}, {"-1", "USD", 0, "", true}, {"01", "USD", 0, "", true},
		{"1e3", "USD", 0, "", true}, {"5", "XYZ", 0, "", true},
	} {
		n, err := parseAmount(c.in, c.code)
		if (err != nil) != c.bad || n != c.minor {
			t.Errorf("parseAmount(%q, %s) = %d, %v", c.in, c.code, n, err)
			continue
		}
		if !c.bad && formatAmount(n, c.code) != c.out {
			t.Errorf("formatAmount(%d, %s) = %q, want %q", n, c.code, formatAmount(n, c.code), c.out)
		}
	}
}
