package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// command is one entry of the command table (commands).
type command struct {
	// name is the command, or "group sub" for a subcommand.
	name string
	// args is the synopsis after the name: "[flags] KIND VALUE".
	args string
	// summary says what it does, in one line.
	summary string
	// more is printed under the summary by 'apiguard NAME -h'.
	more string
	// run runs a top-level command with the arguments after its name; nil
	// for a subcommand, which its group's run dispatches.
	run func(ctx context.Context, args []string, out io.Writer) error
	// noFlags marks a subcommand without a flag set: run answers its -h.
	noFlags bool
}

// synopsis is the command's usage line.
func (c *command) synopsis() string {
	return strings.TrimSpace("apiguard " + c.name + " " + c.args)
}

// helpOut is where 'apiguard CMD -h' prints a command's help.
var helpOut io.Writer = os.Stdout

const intro = `apiguard protects HTTP APIs: an enforcing reverse proxy, streaming detection
over NATS JetStream, and a responder that blocks what it finds.

Usage: apiguard COMMAND [flags] [arguments]
Flags may come before or after the arguments.
`

// lookupCommand returns the table's entry for name ("block",
// "replay capture"), or nil.
func lookupCommand(name string) *command {
	for i := range commands {
		if commands[i].name == name {
			return &commands[i]
		}
	}
	return nil
}

// commandFor returns the (sub)command that a command line names, or nil.
func commandFor(args []string) *command {
	if len(args) >= 2 {
		if c := lookupCommand(args[0] + " " + args[1]); c != nil {
			return c
		}
	}
	if len(args) >= 1 {
		return lookupCommand(args[0])
	}
	return nil
}

// isGroup reports whether name has subcommands.
func isGroup(name string) bool {
	for _, c := range commands {
		if strings.HasPrefix(c.name, name+" ") {
			return true
		}
	}
	return false
}

// subcommands returns a group's subcommands, in table order.
func subcommands(group string) []command {
	var out []command
	for _, c := range commands {
		if strings.HasPrefix(c.name, group+" ") {
			out = append(out, c)
		}
	}
	return out
}

// topNames lists the top-level commands.
func topNames() []string {
	var names []string
	for _, c := range commands {
		if !strings.Contains(c.name, " ") {
			names = append(names, c.name)
		}
	}
	return names
}

// listWidth is the column at which listed summaries start.
const listWidth = 36

// writeList lists commands with their synopses and summaries.
func writeList(w io.Writer, cs []command) {
	for _, c := range cs {
		line := strings.TrimSpace(c.name + " " + c.args)
		if len(line) < listWidth-2 {
			fmt.Fprintf(w, "  %-*s%s\n", listWidth-2, line, c.summary)
			continue
		}
		fmt.Fprintf(w, "  %s\n  %*s%s\n", line, listWidth-2, "", c.summary)
	}
}

// groupList lists a group's subcommands.
func groupList(group string) string {
	var b strings.Builder
	writeList(&b, subcommands(group))
	return strings.TrimRight(b.String(), "\n")
}

// printUsage prints every command with its synopsis.
func printUsage(w io.Writer) {
	fmt.Fprintf(w, "%s\nCommands:\n", intro)
	var cs []command
	for _, c := range commands {
		if !isGroup(c.name) {
			cs = append(cs, c)
		}
	}
	writeList(w, cs)
	fmt.Fprintf(w, "  %-*s%s\n", listWidth-2, "help [COMMAND]", "this list, or a command's help")
	fmt.Fprintf(w, "\n%s\nRun 'apiguard COMMAND -h' for a command's arguments and flags.\n", kindHelp)
}

// printHelp prints a command's synopsis, summary and, given its flag
// set, its flags; for a group, its subcommands.
func printHelp(w io.Writer, name string, fs *flag.FlagSet) {
	c := lookupCommand(name)
	if c == nil { // a flag set of a command not in the table
		c = &command{name: name, args: "[flags]"}
	}
	fmt.Fprintf(w, "Usage: %s\n", c.synopsis())
	if c.summary != "" {
		fmt.Fprintf(w, "\n%s.\n", strings.ToUpper(c.summary[:1])+c.summary[1:])
	}
	if c.more != "" {
		fmt.Fprintf(w, "\n%s\n", c.more)
	}
	if isGroup(name) {
		fmt.Fprintf(w, "\nCommands:\n%s\n\nRun 'apiguard %s COMMAND -h' for a command's arguments and flags.\n", groupList(name), name)
		return
	}
	if fs == nil {
		return
	}
	fmt.Fprintf(w, "\nFlags (before or after the arguments):\n")
	out := fs.Output()
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(out)
}

// flagErrors is a flag set's output: the flag package writes an error
// there just before calling Usage, which is how Usage tells a mistake
// (the error is returned and printed by main, with the synopsis) from -h
// (the help goes to helpOut).
type flagErrors struct{ pending bool }

func (f *flagErrors) Write(p []byte) (int, error) {
	f.pending = true
	return len(p), nil
}

// newFlagSet returns the flag set of a command of the table: -h prints
// its help (printHelp) on helpOut, and Parse returns flag.ErrHelp.
// Parse it with parseArgs so that flags may follow the arguments.
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	errs := &flagErrors{}
	fs.SetOutput(errs)
	fs.Usage = func() {
		if errs.pending {
			errs.pending = false
			return
		}
		printHelp(helpOut, name, fs)
	}
	return fs
}

// parseArgs parses args with flags anywhere among the arguments
// (apiguard block ip 192.0.2.1 --ttl 1h); after "--" everything is an
// argument. fs.Args() then returns the arguments in order. A mistake is
// an errUsage; -h is flag.ErrHelp.
func parseArgs(fs *flag.FlagSet, args []string) error {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if err == flag.ErrHelp {
				return err
			}
			return fmt.Errorf("%w: %v", errUsage, err)
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	// Leave the arguments where fs.Args finds them.
	return fs.Parse(append([]string{"--"}, pos...))
}
