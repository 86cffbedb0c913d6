package marketplace

import (
	"fmt"
	"math/bits"
	"regexp"
	"strconv"
	"strings"

	"golang.org/x/text/currency"
)

// Money: the ledger keeps integer minor units (cents, yen); the API and the
// catalogue show decimals with the currency's ISO 4217 digits ("45.00"
// USD, "4500" JPY, "1.500" KWD). This file is the one place that converts.

var decimalRe = regexp.MustCompile(`^(0|[1-9][0-9]{0,14})(\.([0-9]+))?$`)

// currencyDigits is the number of minor-unit digits of an ISO 4217 code,
// or an error for a code that is not one.
func currencyDigits(code string) (int, error) {
	if !currencyRe.MatchString(code) {
		return 0, fmt.Errorf("not an ISO 4217 code: %q", code)
	}
	u, err := currency.ParseISO(code)
	if err != nil {
		return 0, fmt.Errorf("not an ISO 4217 code: %q", code)
	}
	scale, _ := currency.Standard.Rounding(u)
	return scale, nil
}

// mustDigits is currencyDigits for a code the database holds, which was
// checked on the way in; an unknown one is shown with two digits.
func mustDigits(code string) int {
	d, err := currencyDigits(code)
	if err != nil {
		return 2
	}
	return d
}

// parseAmount reads a non-negative decimal with at most the currency's
// digits into minor units: "45.5" USD → 4550. The error is the message a
// field error shows.
func parseAmount(s, code string) (int64, error) {
	d, err := currencyDigits(code)
	if err != nil {
		return 0, fmt.Errorf("needs a valid currency")
	}
	m := decimalRe.FindStringSubmatch(strings.TrimSpace(s))
	example := formatAmount(45*pow10(d), code)
	if m == nil {
		return 0, fmt.Errorf("must be a decimal string such as %q", example)
	}
	frac := strings.TrimRight(m[3], "0") // "45.00" is 45 yen
	if len(frac) > d {
		if d == 0 {
			return 0, fmt.Errorf("%s has no minor unit: a whole number such as %q", code, example)
		}
		return 0, fmt.Errorf("%s has %d decimal digits: such as %q", code, d, example)
	}
	frac += strings.Repeat("0", d-len(frac))
	n, err := strconv.ParseInt(m[1]+frac, 10, 64)
	if err != nil || n > 1<<50 {
		return 0, fmt.Errorf("is too large")
	}
	return n, nil
}

// formatAmount writes minor units as a decimal with the currency's digits.
func formatAmount(minor int64, code string) string {
	return formatMinor(minor, mustDigits(code))
}

func formatMinor(minor int64, digits int) string {
	sign := ""
	if minor < 0 {
		sign, minor = "-", -minor
	}
	s := strconv.FormatInt(minor, 10)
	if digits == 0 {
		return sign + s
	}
	if len(s) <= digits {
		s = strings.Repeat("0", digits-len(s)+1) + s
	}
	return sign + s[:len(s)-digits] + "." + s[len(s)-digits:]
}

func pow10(n int) int64 {
	p := int64(1)
	for range n {
		p *= 10
	}
	return p
}

// prorate is amount × part / whole in minor units, rounded half to even
// (banker's rounding: 2.5 → 2, 3.5 → 4), for 0 <= part <= whole: the
// 128-bit product never overflows and the quotient is at most amount.
func prorate(amount, part, whole int64) int64 {
	if amount <= 0 || part <= 0 || whole <= 0 {
		return 0
	}
	hi, lo := bits.Mul64(uint64(amount), uint64(part))
	q, rem := bits.Div64(hi, lo, uint64(whole))
	// Compare rem with whole/2 without overflowing: rem > whole-rem.
	switch r, w := rem, uint64(whole)-rem; {
	case r > w, r == w && q%2 == 1:
		q++
	}
	return int64(q)
}

// FormatAmount writes minor units of currency code as the decimal the API
// and the UI show: 4550 USD → "45.50", 4500 JPY → "4500".
func FormatAmount(minor int64, code string) string { return formatAmount(minor, code) }
