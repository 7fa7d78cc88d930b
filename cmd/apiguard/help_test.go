package main

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// runMainEnv, set in a child's environment, makes the test binary run
// main with its arguments: the tests see the real exit code and output.
const runMainEnv = "APIGUARD_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		os.Args = append([]string{"apiguard"}, os.Args[1:]...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// apiguard runs the command line as the binary would, returning its
// standard output, standard error and exit code.
func apiguard(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), runMainEnv+"=1")
	cmd.Dir = t.TempDir()
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		code = exit.ExitCode()
	default:
		t.Fatalf("running %v: %v", args, err)
	}
	return o.String(), e.String(), code
}

// TestHelpForEveryCommand asks every command and subcommand of the table
// for its help in each way there is: it exits 0 and prints the synopsis,
// and, for a command with flags, its flags.
func TestHelpForEveryCommand(t *testing.T) {
	for _, c := range commands {
		words := strings.Fields(c.name)
		for _, form := range [][]string{append(slices.Clone(words), "--help"), append(slices.Clone(words), "-h"),
			append([]string{"help"}, words...)} {
			t.Run(strings.Join(form, " "), func(t *testing.T) {
				out, errOut, code := apiguard(t, form...)
				if code != 0 {
					t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
				}
				if !strings.Contains(out, "Usage: "+c.synopsis()+"\n") {
					t.Errorf("no synopsis %q in:\n%s", c.synopsis(), out)
				}
				switch {
				case isGroup(c.name):
					for _, sub := range subcommands(c.name) {
						if !strings.Contains(out, sub.name+" "+sub.args) {
							t.Errorf("group help lacks %q:\n%s", sub.name+" "+sub.args, out)
						}
					}
				case !c.noFlags && !strings.Contains(out, "Flags"):
					t.Errorf("no flags in:\n%s", out)
				}
			})
		}
	}
	// The arguments of the operator commands are named.
	out, _, _ := apiguard(t, "block", "-h")
	for _, want := range []string{"KIND VALUE", "KIND is one of ip, cidr, key, token, sub, fp", "-ttl", "-nats-creds"} {
		if !strings.Contains(out, want) {
			t.Errorf("block -h lacks %q:\n%s", want, out)
		}
	}
}

// TestUsageListsEveryCommand checks that apiguard --help lists every
// command and subcommand with its synopsis, and that a call without a
// command prints the same list as an error.
func TestUsageListsEveryCommand(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}} {
		out, _, code := apiguard(t, args...)
		if code != 0 {
			t.Fatalf("%v: exit %d", args, code)
		}
		for _, c := range commands {
			if isGroup(c.name) {
				continue
			}
			if line := strings.TrimSpace(c.name + " " + c.args); !strings.Contains(out, "  "+line) {
				t.Errorf("%v does not list %q:\n%s", args, line, out)
			}
		}
	}
	_, errOut, code := apiguard(t)
	if code != 2 || !strings.Contains(errOut, "replay capture") {
		t.Errorf("no command: exit %d, stderr:\n%s", code, errOut)
	}
}

// TestUsageErrorsShowTheSynopsis checks that a mistake exits 2 and says
// what the command wants.
func TestUsageErrorsShowTheSynopsis(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"block", "ip"}, []string{"want KIND VALUE", "usage: apiguard block [flags] KIND VALUE"}},
		{[]string{"block", "--bogus", "ip", "192.0.2.1"}, []string{"flag provided but not defined: -bogus", "usage: apiguard block"}},
		{[]string{"replay"}, []string{"needs a command", "replay capture --out FILE"}},
		{[]string{"replay", "nonsense"}, []string{"unknown replay command"}},
		{[]string{"secrets", "nonsense"}, []string{"unknown secrets command"}},
		{[]string{"help", "nonsense"}, []string{`no command "nonsense"`}},
		{[]string{"blocks", "--output", "yaml"}, []string{`--output "yaml", want table or json`}},
		{[]string{"nonsense"}, []string{`unknown command "nonsense"`, "anomalies"}},
	} {
		out, errOut, code := apiguard(t, tc.args...)
		if code != 2 {
			t.Errorf("%v: exit %d, want 2\nstdout:\n%s\nstderr:\n%s", tc.args, code, out, errOut)
		}
		for _, w := range tc.want {
			if !strings.Contains(errOut, w) {
				t.Errorf("%v: stderr lacks %q:\n%s", tc.args, w, errOut)
			}
		}
		if strings.Contains(out, "Flags") {
			t.Errorf("%v: a mistake printed the help on standard output:\n%s", tc.args, out)
		}
	}
}

// TestFlagsAfterArguments checks parseArgs: flags anywhere, "--" ends
// them, and the arguments keep their order.
func TestFlagsAfterArguments(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		ttl      time.Duration
		reason   string
		wantArgs []string
	}{
		{[]string{"ip", "192.0.2.1"}, time.Hour, "", []string{"ip", "192.0.2.1"}},
		{[]string{"--ttl", "2h", "ip", "192.0.2.1"}, 2 * time.Hour, "", []string{"ip", "192.0.2.1"}},
		{[]string{"ip", "192.0.2.1", "--ttl", "2h"}, 2 * time.Hour, "", []string{"ip", "192.0.2.1"}},
		{[]string{"ip", "--ttl=3h", "192.0.2.1", "-reason", "scan"}, 3 * time.Hour, "scan", []string{"ip", "192.0.2.1"}},
		{[]string{"--ttl", "2h", "--", "sub", "--ttl"}, 2 * time.Hour, "", []string{"sub", "--ttl"}},
		{[]string{"sub", "--", "-x"}, time.Hour, "", []string{"sub", "-x"}},
	} {
		fs := newFlagSet("test")
		ttl := fs.Duration("ttl", time.Hour, "")
		reason := fs.String("reason", "", "")
		if err := parseArgs(fs, tc.args); err != nil {
			t.Errorf("%v: %v", tc.args, err)
			continue
		}
		if *ttl != tc.ttl || *reason != tc.reason || !slices.Equal(fs.Args(), tc.wantArgs) {
			t.Errorf("%v: ttl %s reason %q args %q, want %s %q %q", tc.args, *ttl, *reason, fs.Args(), tc.ttl, tc.reason, tc.wantArgs)
		}
	}
	fs := newFlagSet("test")
	if err := parseArgs(fs, []string{"a", "--bogus"}); !errors.Is(err, errUsage) {
		t.Errorf("an unknown flag after an argument: %v, want a usage error", err)
	}
	var help bytes.Buffer
	helpOut = &help
	defer func() { helpOut = os.Stdout }()
	if err := parseArgs(newFlagSet("blocks"), []string{"-h"}); !errors.Is(err, flag.ErrHelp) || !strings.Contains(help.String(), "apiguard blocks") {
		t.Errorf("-h: %v, printed %q", err, help.String())
	}
}

// TestFlagsAfterArgumentsEverywhere runs commands of each kind with a
// flag after their arguments: the flag takes effect.
func TestFlagsAfterArgumentsEverywhere(t *testing.T) {
	// keys new: the flag after nothing positional still parses.
	out, errOut, code := apiguard(t, "keys", "new", "--plan", "gold", "--id", "k9")
	if code != 0 || !strings.Contains(out, "id: k9") || !strings.Contains(out, "plan: gold") {
		t.Errorf("keys new: exit %d\n%s%s", code, out, errOut)
	}
	// check-config: the flag comes last.
	out, errOut, code = apiguard(t, "check-config", "--log-level", "warn")
	if code != 0 || !strings.Contains(out, "level: warn") {
		t.Errorf("check-config --log-level warn: exit %d\n%s%s", code, out, errOut)
	}
}
