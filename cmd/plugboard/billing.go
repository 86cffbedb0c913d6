package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/plugboard/plugboard/marketplace"
)

const billingSynopsis = "billing close [--period YYYY-MM]"

// cmdBilling is the operator's billing command: closing a period writes
// every organization's invoices for it, as the scheduled job does, on the
// configured database. Closing is once per organization and period, so
// running it again, or beside the job, writes nothing twice.
func cmdBilling(ctx context.Context, args []string, out, errOut io.Writer, getenv env) error {
	_, args, err := flags("billing", billingSynopsis, out).action(args, "close")
	if err != nil {
		return err
	}
	fs := flags("billing close", billingSynopsis, out)
	period := fs.String("period", "", "the month to close, UTC: 2026-11 (default: every month that has ended and is not closed)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fs.usageErr("billing close: unexpected argument %q", fs.Arg(0))
	}
	var month time.Time
	if *period != "" {
		if month, err = marketplace.ParsePeriod(*period); err != nil {
			return fs.usageErr("billing close: --period must be a month such as 2026-11, not %q", *period)
		}
	}
	a, err := openPlatform(ctx, getenv)
	if err != nil {
		return err
	}
	defer a.Close()
	var reports []marketplace.CloseReport
	if !month.IsZero() {
		rep, err := a.Marketplace.Billing.ClosePeriod(ctx, month)
		if err != nil {
			return fmt.Errorf("billing close: %w", cliError(err))
		}
		reports = append(reports, rep)
	} else {
		reports, err = a.Marketplace.Billing.CloseDue(ctx)
		if err != nil {
			return fmt.Errorf("billing close: %w", cliError(err))
		}
		if len(reports) == 0 {
			fmt.Fprintln(out, "no period to close")
		}
	}
	for _, r := range reports {
		if r.AlreadyClosed {
			fmt.Fprintf(out, "%s was closed already\n", marketplace.FormatPeriod(r.Period))
			continue
		}
		fmt.Fprintf(out, "closed %s: %d organizations, %d invoices\n", marketplace.FormatPeriod(r.Period), r.Organizations, r.Invoices)
	}
	return nil
}
