package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
)

// usageError is bad usage: an unknown command or action, a missing or
// malformed flag or argument. main prints it with the command's usage on
// stderr and exits 2; --help is flag.ErrHelp and exits 0; every other
// error is a runtime error and exits 1.
type usageError struct {
	err   error
	usage string // the usage of the command that was misused
}

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// exitCode reports err on w, as main does, and returns the exit status.
func exitCode(err error, w io.Writer) int {
	var ue *usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintln(w, "plugboard: "+err.Error())
		fmt.Fprint(w, "\n"+ue.usage)
		return 2
	}
	fmt.Fprintln(w, "plugboard: "+err.Error())
	return 1
}

// flagSet is a command's flags. Parse prints the usage on --help (or -h)
// to out and returns flag.ErrHelp; any other parse error is a usageError
// carrying the usage, so nothing is printed twice.
type flagSet struct {
	*flag.FlagSet
	synopsis string
	out      io.Writer
}

// flags returns the flags of command name; synopsis is its usage line
// after "plugboard " (lines after the first are indented alternatives).
func flags(name, synopsis string, out io.Writer) *flagSet {
	fs := &flagSet{FlagSet: flag.NewFlagSet(name, flag.ContinueOnError), synopsis: synopsis, out: out}
	fs.SetOutput(io.Discard)
	fs.FlagSet.Usage = func() {}
	return fs
}

// usage is the command's usage: the synopsis, the command's summary and
// its flags.
func (fs *flagSet) usage() string {
	var b strings.Builder
	lines := strings.Split(fs.synopsis, "\n")
	fmt.Fprintf(&b, "Usage: plugboard %s\n", lines[0])
	for _, l := range lines[1:] {
		fmt.Fprintf(&b, "       plugboard %s\n", l)
	}
	name := strings.Fields(fs.Name())[0] // "event-types create" has the summary of event-types
	if i := slices.IndexFunc(commands(), func(c command) bool { return c.name == name }); i >= 0 {
		fmt.Fprintf(&b, "\n%s\n", commands()[i].summary)
	}
	var defaults strings.Builder
	fs.SetOutput(&defaults)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
	if defaults.Len() > 0 {
		b.WriteString("\nFlags:\n" + defaults.String())
	}
	return b.String()
}

// Parse parses args; see flagSet.
func (fs *flagSet) Parse(args []string) error {
	err := fs.FlagSet.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(fs.out, fs.usage())
		return flag.ErrHelp
	}
	if err != nil {
		return fs.usageErr("%s: %v", fs.Name(), err)
	}
	return nil
}

// usageErr is a usageError with the command's usage.
func (fs *flagSet) usageErr(format string, a ...any) error {
	return &usageError{err: fmt.Errorf(format, a...), usage: fs.usage()}
}

// isHelp reports whether arg asks for help.
func isHelp(arg string) bool {
	return arg == "-h" || arg == "-help" || arg == "--help" || arg == "help"
}

// action splits the action off the arguments of a command that has some
// (deliveries list, users create): help prints the usage and is
// flag.ErrHelp; a missing or unknown action is a usageError.
func (fs *flagSet) action(args []string, actions ...string) (string, []string, error) {
	want := strings.Join(actions[:len(actions)-1], ", ") + " or " + actions[len(actions)-1]
	if len(actions) == 1 {
		want = actions[0]
	}
	switch {
	case len(args) == 0:
		return "", nil, fs.usageErr("%s: expected an action: %s", fs.Name(), want)
	case isHelp(args[0]):
		fmt.Fprint(fs.out, fs.usage())
		return "", nil, flag.ErrHelp
	case !slices.Contains(actions, args[0]):
		return "", nil, fs.usageErr("%s: unknown action %q; expected %s", fs.Name(), args[0], want)
	}
	return args[0], args[1:], nil
}
