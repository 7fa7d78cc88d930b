package deploy_test

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// dockerfiles are the images' build files, relative to the repository
// root, which is their build context.
var dockerfiles = []string{"Dockerfile", "deploy/grafana/Dockerfile"}

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	cmd, args string
	line      int
}

func parseDockerfile(t *testing.T, path string) []instruction {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot(t), path))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []instruction
	var cur strings.Builder
	start := 0
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if cur.Len() == 0 && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if cur.Len() == 0 {
			start = n
		}
		if body, more := strings.CutSuffix(line, `\`); more {
			cur.WriteString(body + " ")
			continue
		}
		cur.WriteString(line)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, instruction{strings.ToUpper(cmd), strings.TrimSpace(args), start})
		cur.Reset()
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// goBuildLines are a Dockerfile's RUN instructions that run `go build`,
// without their --mount options (BuildKit's caches).
func goBuildLines(ins []instruction) []string {
	var out []string
	for _, in := range ins {
		if in.cmd != "RUN" || !strings.Contains(in.args, "go build") {
			continue
		}
		fields := strings.Fields(in.args)
		for len(fields) > 0 && strings.HasPrefix(fields[0], "--mount=") {
			fields = fields[1:]
		}
		out = append(out, strings.Join(fields, " "))
	}
	return out
}

// TestDockerfileBuild runs each image's `go build` line as written, with
// /bin/sh as RUN does, writing into a temporary folder instead of /out,
// and checks the binaries are static.
func TestDockerfileBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the images' binaries (a minute with a cold build cache)")
	}
	root := repoRoot(t)
	for _, df := range dockerfiles {
		lines := goBuildLines(parseDockerfile(t, df))
		if len(lines) == 0 {
			t.Errorf("%s: no go build line", df)
		}
		for _, line := range lines {
			out := t.TempDir()
			if !strings.Contains(line, "/out/") || !strings.Contains(line, "CGO_ENABLED=0") {
				t.Errorf("%s: %q: want a static (CGO_ENABLED=0) build into /out/", df, line)
				continue
			}
			cmd := exec.Command("/bin/sh", "-c", strings.ReplaceAll(line, "/out/", out+"/"))
			cmd.Dir = root
			cmd.Env = os.Environ()
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("%s: %s: %v\n%s", df, line, err, b)
				continue
			}
			entries, err := os.ReadDir(out)
			if err != nil || len(entries) != 1 {
				t.Errorf("%s: %s wrote %d files, want 1", df, line, len(entries))
				continue
			}
			bin := filepath.Join(out, entries[0].Name())
			if b, err := exec.Command("go", "version", "-m", bin).CombinedOutput(); err != nil ||
				!strings.Contains(string(b), "CGO_ENABLED=0") || !strings.Contains(string(b), "-trimpath=true") {
				t.Errorf("%s: %s is not a static, trimmed Go binary: %v\n%s", df, bin, err, b)
			}
		}
	}
}

// TestDockerfiles checks what the images are made of: a non-root final
// stage on a small base, and every file copied from the build context
// present and not excluded by .dockerignore.
func TestDockerfiles(t *testing.T) {
	root := repoRoot(t)
	ignore, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	var ignored []string
	for _, l := range strings.Split(string(ignore), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			ignored = append(ignored, strings.TrimSuffix(l, "/"))
		}
	}
	for _, df := range dockerfiles {
		ins := parseDockerfile(t, df)
		var final instruction
		var user string
		for _, in := range ins {
			switch in.cmd {
			case "FROM":
				final, user = in, ""
			case "USER":
				user = in.args
			case "COPY":
				if strings.Contains(in.args, "--from=") {
					continue
				}
				fields := strings.Fields(in.args)
				for _, src := range fields[:len(fields)-1] {
					if strings.HasPrefix(src, "--") {
						continue
					}
					src = strings.TrimSuffix(src, "/")
					if src == "." {
						continue
					}
					if _, err := os.Stat(filepath.Join(root, src)); err != nil {
						t.Errorf("%s:%d: COPY %s: not in the repository", df, in.line, src)
					}
					for _, pat := range ignored {
						if m, _ := filepath.Match(pat, src); m || strings.HasPrefix(src, pat+"/") {
							t.Errorf("%s:%d: COPY %s, which .dockerignore excludes (%s)", df, in.line, src, pat)
						}
					}
				}
			}
		}
		switch df {
		case "Dockerfile":
			if !strings.HasPrefix(final.args, "gcr.io/distroless/static") {
				t.Errorf("%s: final stage %q, want distroless/static", df, final.args)
			}
			if user == "" || strings.HasPrefix(user, "0") || user == "root" {
				t.Errorf("%s: final stage runs as %q, want a non-root user", df, user)
			}
		case "deploy/grafana/Dockerfile":
			if !strings.HasPrefix(final.args, "grafana/grafana:") {
				t.Errorf("%s: final stage %q, want grafana/grafana", df, final.args)
			}
		}
	}
}
