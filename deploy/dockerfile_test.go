package deploy

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// buildCommand is the build command of the README's quick start and of
// docs/operating.md. The Dockerfile must build with it unchanged: the
// docs have it as a line of its own, the Dockerfile as "RUN ./xcaddy.sh".
const buildCommand = "./xcaddy.sh"

// repoRoot is the repository's top directory, seen from this module.
const repoRoot = ".."

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	cmd  string // upper case: FROM, RUN, ...
	args string
	line string // as written, joined
}

// stage is one FROM and what follows it.
type stage struct {
	from  string
	instr []instruction
}

func parseDockerfile(t *testing.T) []stage {
	t.Helper()
	text := readFile(t, filepath.Join(repoRoot, "Dockerfile"))
	var stages []stage
	var cur strings.Builder
	flush := func() {
		line := strings.TrimSpace(cur.String())
		cur.Reset()
		if line == "" {
			return
		}
		cmd, args, _ := strings.Cut(line, " ")
		in := instruction{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args), line: line}
		if in.cmd == "FROM" {
			stages = append(stages, stage{from: in.args})
			return
		}
		if len(stages) == 0 {
			t.Fatalf("Dockerfile: %q before the first FROM", line)
		}
		s := &stages[len(stages)-1]
		s.instr = append(s.instr, in)
	}
	for _, raw := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(raw)
		if strings.HasPrefix(trimmed, "#") {
			continue
		}
		if body, ok := strings.CutSuffix(trimmed, "\\"); ok {
			cur.WriteString(body + " ")
			continue
		}
		cur.WriteString(trimmed)
		flush()
	}
	flush()
	return stages
}

func TestDockerfileBuildsLikeTheDocs(t *testing.T) {
	// The quick start builds with it too: ./xcaddy.sh && ./caddy run ...
	readme := readFile(t, filepath.Join(repoRoot, "README.md"))
	if !strings.Contains(readme, "\n"+buildCommand+" && ") {
		t.Errorf("README.md's quick start does not build with %q", buildCommand)
	}
	page := readFile(t, filepath.Join(repoRoot, "docs", "operating.md"))
	if !slices.ContainsFunc(strings.Split(page, "\n"), func(l string) bool { return strings.TrimSpace(l) == buildCommand }) {
		t.Errorf("docs/operating.md has no line %q (the image's build command)", buildCommand)
	}

	stages := parseDockerfile(t)
	if len(stages) < 2 {
		t.Fatalf("Dockerfile has %d stage(s), want a build stage and a run stage", len(stages))
	}
	var build *stage
	for i := range stages[:len(stages)-1] {
		for _, in := range stages[i].instr {
			if in.line == "RUN "+buildCommand {
				build = &stages[i]
			}
		}
	}
	if build == nil {
		t.Fatalf("no build stage runs exactly %q", "RUN "+buildCommand)
	}
	static := false
	for _, in := range build.instr {
		if in.line == "RUN "+buildCommand {
			break
		}
		if in.cmd == "ENV" && slices.Contains(strings.Fields(in.args), "CGO_ENABLED=0") {
			static = true
		}
	}
	if !static {
		t.Errorf("the build stage does not set ENV CGO_ENABLED=0 before %q", buildCommand)
	}
}

func TestDockerfileRunStage(t *testing.T) {
	stages := parseDockerfile(t)
	run := stages[len(stages)-1]
	if !strings.HasPrefix(run.from, "gcr.io/distroless/static") || !strings.HasSuffix(run.from, ":nonroot") {
		t.Errorf("run stage FROM %s, want a distroless static :nonroot base", run.from)
	}
	var user string
	env := map[string]string{}
	var volumes []string
	for _, in := range run.instr {
		switch in.cmd {
		case "RUN":
			t.Errorf("run stage has %q: the minimal base has no shell", in.line)
		case "USER":
			user = in.args
		case "ENV":
			for _, kv := range strings.Fields(in.args) {
				k, v, _ := strings.Cut(kv, "=")
				env[k] = v
			}
		case "VOLUME":
			volumes = append(volumes, strings.Fields(in.args)...)
		}
	}
	if uid, _, _ := strings.Cut(user, ":"); uid == "" || uid == "0" || uid == "root" {
		t.Errorf("USER %q: want a non-root user", user)
	}
	for _, name := range []string{"XDG_DATA_HOME", "XDG_CONFIG_HOME"} {
		dir := env[name]
		if !slices.ContainsFunc(volumes, func(v string) bool { return dir == v || strings.HasPrefix(dir, v+"/") }) {
			t.Errorf("%s=%q is not under a VOLUME (%v): with a read-only root filesystem Caddy could not write there", name, dir, volumes)
		}
	}
	entry := dockerEntrypoint(t)
	copied := false
	for _, in := range run.instr {
		if in.cmd == "COPY" && strings.HasSuffix(in.args, " "+entry) {
			copied = true
		}
	}
	if !copied {
		t.Errorf("ENTRYPOINT %s is not a file the run stage copies in", entry)
	}
}

// dockerEntrypoint returns the program of the run stage's exec-form
// ENTRYPOINT: what the Kubernetes probes must run too.
func dockerEntrypoint(t *testing.T) string {
	t.Helper()
	stages := parseDockerfile(t)
	for _, in := range stages[len(stages)-1].instr {
		if in.cmd != "ENTRYPOINT" {
			continue
		}
		var argv []string
		if err := json.Unmarshal([]byte(in.args), &argv); err != nil || len(argv) == 0 {
			t.Fatalf("ENTRYPOINT %s: want the exec form [\"/path/to/caddy\"]", in.args)
		}
		return argv[0]
	}
	t.Fatal("the run stage has no ENTRYPOINT")
	return ""
}
