// Command loadbench measures proxied throughput and tail latency of
// caddy-revocation against plain reverse_proxy and against the usual
// do-it-yourself setup (forward_auth to a small service that asks Redis on
// every request), all in one run, and prints them as ratios to plain
// reverse_proxy.
//
// As in the sidecar case, the app, Redis, the auth service and the proxy
// share one core (taskset -c 0); the load generator (wrk) runs on the
// other. Scenarios alternate over several rounds (in reverse order every
// other round), each ratio is taken against the baseline of its own
// round, and each figure is the median over rounds, so that drift on this
// noisy machine spreads over all of them.
//
//	go run ./bench/loadbench -caddy ./caddy
//
// With -pairs, it measures instead the overhead of one scenario's
// directive alone, on pairs of side-by-side processes (paired.go):
//
//	go run ./bench/loadbench -caddy ./caddy -scenarios 1 -pairs 10 -slices 6 -duration 3s -warmup 1s -threads 1 -connections 16
//
// With -against, the pairs compare the directive in -caddy with the same
// directive in another build: what one build costs against another,
// measured side by side rather than as the difference of two overheads
// measured apart:
//
//	go run ./bench/loadbench -caddy ./caddy-new -against ./caddy-old -scenarios 1 -pairs 4 -slices 4 -duration 3s -warmup 1s
//
// It also serves as the upstream app and as the auth service when run
// with "upstream" or "authsvc" as first argument.
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/redis/go-redis/v9"

	"github.com/caddy-revocation/caddy-revocation/bench/internal/proc"
	"github.com/caddy-revocation/caddy-revocation/bench/internal/procstat"
)

const hmacSecret = "loadbench-secret-0123456789abcdef0123"

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "upstream":
			serveUpstream(os.Args[2])
			return
		case "authsvc":
			serveAuth(os.Args[2], os.Args[3])
			return
		}
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "loadbench:", err)
		os.Exit(1)
	}
}

// serveUpstream is the app: a small JSON answer, as an API would give.
func serveUpstream(addr string) {
	body := []byte(`{"id":42,"name":"widget","price":"9.99","tags":["a","b","c"]}`)
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	})
	srv := &http.Server{Addr: addr, ReadHeaderTimeout: 5 * time.Second}
	if err := srv.ListenAndServe(); err != nil {
		fmt.Fprintln(os.Stderr, "upstream:", err)
		os.Exit(1)
	}
}

// serveAuth is the do-it-yourself revocation check: hash the bearer
// token, ask Redis whether it is revoked, answer 200 or 401.
func serveAuth(addr, redisAddr string) {
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr, PoolSize: 64})
	http.HandleFunc("/check", func(w http.ResponseWriter, r *http.Request) {
		tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		if tok == "" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		sum := sha256.Sum256([]byte(tok))
		n, err := rdb.Exists(r.Context(), "diy:revoked:"+hex.EncodeToString(sum[:])).Result()
		switch {
		case err != nil:
			w.WriteHeader(http.StatusServiceUnavailable)
		case n > 0:
			w.WriteHeader(http.StatusUnauthorized)
		default:
			w.WriteHeader(http.StatusOK)
		}
	})
	srv := &http.Server{Addr: addr, ReadHeaderTimeout: 5 * time.Second}
	if err := srv.ListenAndServe(); err != nil {
		fmt.Fprintln(os.Stderr, "authsvc:", err)
		os.Exit(1)
	}
}

type scenario struct {
	name      string
	caddyfile string // site body; {{UP}} {{AUTH}} {{REDIS}} {{KEY}} replaced
	tokens    string // "hs256" or "es256"
}

var scenarios = []scenario{
	{"reverse_proxy (baseline)", "reverse_proxy {{UP}}", "hs256"},
	{"revocation, HS256", `revocation {
		redis redis://{{REDIS}}
		jwt {
			hmac_secret ` + hmacSecret + `
		}
		endpoints none
	}
	reverse_proxy {{UP}}`, "hs256"},
	{"revocation, ES256", `revocation {
		redis redis://{{REDIS}}
		jwt {
			public_key {{KEY}}
		}
		endpoints none
	}
	reverse_proxy {{UP}}`, "es256"},
	{"forward_auth to a Redis-checking service", `forward_auth {{AUTH}} {
		uri /check
	}
	reverse_proxy {{UP}}`, "hs256"},
	// As a site block is usually written: the default endpoints (the
	// three seed endpoints an app without app_id gets), whose route every
	// proxied request passes before the guard.
	{"revocation, HS256, default endpoints", `revocation {
		redis redis://{{REDIS}}
		jwt {
			hmac_secret ` + hmacSecret + `
		}
	}
	reverse_proxy {{UP}}`, "hs256"},
	// What scenario 4's route costs Caddy itself, without the directive:
	// a route of the same shape (a path matcher over the three seed
	// endpoints' paths, a subroute behind it) that no proxied request
	// matches, before plain reverse_proxy.
	{"reverse_proxy behind a route that matches nothing", `@endpoints path /v1/session/me/revoke /v1/auth/session /v1/auth/logout
	route @endpoints {
		respond 404
	}
	reverse_proxy {{UP}}`, "hs256"},
}

type result struct {
	rps      float64
	p99ms    float64
	cpuUS    float64 // the caddy process's CPU time per request, µs
	requests float64
	cpu      time.Duration
}

func run() error {
	caddyBin := flag.String("caddy", "", "caddy binary with the module (default: build ./cmd/caddy)")
	duration := flag.Duration("duration", 10*time.Second, "measured duration of each run")
	warmup := flag.Duration("warmup", 2*time.Second, "unmeasured warm-up of each run")
	conns := flag.Int("connections", 32, "wrk connections")
	threads := flag.Int("threads", 2, "wrk threads")
	rounds := flag.Int("rounds", 3, "rounds over all scenarios (median reported)")
	ntokens := flag.Int("tokens", 1000, "distinct clients (tokens), each reused")
	serverCPU := flag.String("server-cpu", "0", "CPU list for app, Redis, auth service and proxy")
	loadCPU := flag.String("load-cpu", "1", "CPU list for wrk")
	jsonOut := flag.String("json", "", "also write the results as JSON to this file")
	profileDir := flag.String("profile", "", "write a CPU profile of the proxy during each measured run into this directory (round-scenario.pprof)")
	only := flag.String("scenarios", "", "comma-separated scenario numbers to run (0 is the baseline, always run); default all")
	pairs := flag.Int("pairs", 0, "paired overhead: this many pairs of side-by-side processes, baseline and the one scenario of -scenarios, instead of rounds")
	against := flag.String("against", "", "paired overhead: the baseline is the same scenario in this other caddy binary, instead of plain reverse_proxy in -caddy (the cost of one build against another; -scenarios 0 compares plain reverse_proxy)")
	nslices := flag.Int("slices", 8, "paired overhead: alternations of -duration per process in each pair")
	flag.BoolVar(&verbose, "v", false, "paired overhead: print every slice")
	flag.BoolVar(&together, "together", true, "paired overhead: load both processes of a pair at once, each with its own wrk (false: one after the other)")
	flag.Parse()
	chosen := scenarios
	if *only != "" {
		chosen = scenarios[:1]
		for f := range strings.SplitSeq(*only, ",") {
			i, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || i < 0 || i >= len(scenarios) {
				return fmt.Errorf("-scenarios: %q is not a scenario number (0-%d)", f, len(scenarios)-1)
			}
			if i > 0 {
				chosen = append(chosen, scenarios[i])
			}
		}
	}

	for _, bin := range []string{"wrk", "redis-server", "taskset"} {
		if _, err := exec.LookPath(bin); err != nil {
			return fmt.Errorf("%s not found (as root: apt-get install -y wrk redis-server util-linux)", bin)
		}
	}
	work, err := os.MkdirTemp("", "loadbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	if *caddyBin == "" {
		*caddyBin = filepath.Join(work, "caddy")
		build := exec.Command("go", "build", "-o", *caddyBin, "./cmd/caddy")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("build caddy: %w", err)
		}
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}

	var procs []*exec.Cmd
	defer func() {
		for _, p := range procs {
			proc.Stop(p)
		}
	}()
	startPinned := func(name string, args ...string) (*exec.Cmd, error) {
		cmd := exec.Command("taskset", append([]string{"-c", *serverCPU, name}, args...)...)
		cmd.Stdout, cmd.Stderr = nil, nil
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+work, "XDG_CONFIG_HOME="+work, "HOME="+work)
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("start %s: %w", name, err)
		}
		procs = append(procs, cmd)
		return cmd, nil
	}

	redisPort, upPort, authPort := proc.FreePort(), proc.FreePort(), proc.FreePort()
	redisAddr := "127.0.0.1:" + strconv.Itoa(redisPort)
	upAddr := "127.0.0.1:" + strconv.Itoa(upPort)
	authAddr := "127.0.0.1:" + strconv.Itoa(authPort)
	if _, err := startPinned("redis-server", "--port", strconv.Itoa(redisPort), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", work); err != nil {
		return err
	}
	if _, err := startPinned(self, "upstream", upAddr); err != nil {
		return err
	}
	if _, err := startPinned(self, "authsvc", authAddr, redisAddr); err != nil {
		return err
	}
	for _, a := range []string{redisAddr, upAddr, authAddr} {
		if err := waitPort(a, 10*time.Second); err != nil {
			return err
		}
	}

	// Keys and tokens: many clients, each with its own token, reused.
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	der, err := x509.MarshalPKIXPublicKey(&ecKey.PublicKey)
	if err != nil {
		return err
	}
	keyFile := filepath.Join(work, "es256.pub")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		return err
	}
	tokenFiles := map[string]string{}
	for _, alg := range []string{"hs256", "es256"} {
		var lines []string
		for i := 0; i < *ntokens; i++ {
			claims := jwt.MapClaims{
				"sub": fmt.Sprintf("user-%d", i), "sid": fmt.Sprintf("session-%d", i), "jti": fmt.Sprintf("%s-%d", alg, i),
				"iat": time.Now().Unix(), "exp": time.Now().Add(2 * time.Hour).Unix(),
			}
			var tok string
			if alg == "hs256" {
				tok, err = jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(hmacSecret))
			} else {
				tok, err = jwt.NewWithClaims(jwt.SigningMethodES256, claims).SignedString(ecKey)
			}
			if err != nil {
				return err
			}
			lines = append(lines, tok)
		}
		f := filepath.Join(work, alg+".tokens")
		if err := os.WriteFile(f, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
			return err
		}
		tokenFiles[alg] = f
	}
	script := filepath.Join(work, "tokens.lua")
	if err := os.WriteFile(script, []byte(wrkScript), 0o600); err != nil {
		return err
	}

	if *pairs > 0 {
		if *against != "" && len(chosen) == 1 {
			chosen = append(chosen, chosen[0]) // -scenarios 0: plain reverse_proxy, build against build
		}
		if len(chosen) != 2 {
			return errors.New("-pairs needs exactly one scenario besides the baseline (-scenarios N)")
		}
		repl := map[string]string{"{{UP}}": upAddr, "{{AUTH}}": authAddr, "{{REDIS}}": redisAddr, "{{KEY}}": keyFile}
		if *against != "" {
			// Both processes run the directive: the ratio is -caddy's
			// cost per request over -against's.
			chosen[0] = scenario{"against: " + chosen[1].name, chosen[1].caddyfile, chosen[1].tokens}
		}
		start := func(sc scenario) (*instance, error) {
			bin := *caddyBin
			if *against != "" && sc.name == chosen[0].name {
				bin = *against
			}
			return startCaddy(sc, bin, work, startPinned, repl, tokenFiles[sc.tokens])
		}
		load := loader{tokens: tokenFiles[chosen[1].tokens], script: script, cpus: *loadCPU, threads: *threads, conns: *conns}
		return runPaired(chosen[0], chosen[1], *pairs, *nslices, *duration, *warmup, start, load, *jsonOut)
	}

	results := make(map[string][]result)
	for round := 1; round <= *rounds; round++ {
		// Odd rounds run the scenarios in order, even rounds in reverse,
		// so that no scenario always runs at the same point of a round.
		order := slices.Clone(chosen)
		if round%2 == 0 {
			slices.Reverse(order)
		}
		for _, sc := range order {
			res, err := runScenario(sc, *caddyBin, work, startPinned, map[string]string{
				"{{UP}}": upAddr, "{{AUTH}}": authAddr, "{{REDIS}}": redisAddr, "{{KEY}}": keyFile,
			}, tokenFiles[sc.tokens], script, *loadCPU, *threads, *conns, *warmup, *duration,
				profilePath(*profileDir, round, sc.name))
			if err != nil {
				return fmt.Errorf("%s: %w", sc.name, err)
			}
			fmt.Fprintf(os.Stderr, "round %d  %-42s %9.0f req/s  p99 %6.2f ms  caddy CPU %6.2f µs/req\n", round, sc.name, res.rps, res.p99ms, res.cpuUS)
			results[sc.name] = append(results[sc.name], res)
		}
	}

	// Each scenario's ratio is taken against the baseline of the same
	// round (the machine drifts between rounds), then the median over
	// rounds is reported, with its spread.
	baseRuns := results[scenarios[0].name]
	// The same for the proxy's own CPU time per request, read from
	// /proc around the measured run: the figure that the other work on
	// a shared machine disturbs least.
	fmt.Printf("\n| setup | requests/s | ratio to reverse_proxy (median, min-max over rounds) | p99 latency | caddy CPU per request | CPU ratio to reverse_proxy (median, mean, min-max) |\n|---|---|---|---|---|---|\n")
	type row struct {
		Name        string  `json:"name"`
		RPS         float64 `json:"rps"`
		Ratio       float64 `json:"ratio"`
		RatioMin    float64 `json:"ratio_min"`
		RatioMax    float64 `json:"ratio_max"`
		P99ms       float64 `json:"p99_ms"`
		CPUus       float64 `json:"cpu_us_per_request"`
		CPURatio    float64 `json:"cpu_ratio"`
		CPURatioAvg float64 `json:"cpu_ratio_mean"`
		CPURatioMin float64 `json:"cpu_ratio_min"`
		CPURatioMax float64 `json:"cpu_ratio_max"`
	}
	spread := func(rs []result, f func(result) float64) (med, lo, hi float64) {
		lo, hi = f(rs[0]), f(rs[0])
		for _, r := range rs {
			lo, hi = min(lo, f(r)), max(hi, f(r))
		}
		return median(rs, f), lo, hi
	}
	var rows []row
	for _, sc := range chosen {
		runs := results[sc.name]
		ratios := make([]result, len(runs))
		for i := range runs {
			ratios[i] = result{rps: runs[i].rps / baseRuns[i].rps, cpuUS: runs[i].cpuUS / baseRuns[i].cpuUS}
		}
		rps := median(runs, func(r result) float64 { return r.rps })
		p99 := median(runs, func(r result) float64 { return r.p99ms })
		cpu := median(runs, func(r result) float64 { return r.cpuUS })
		ratio, lo, hi := spread(ratios, func(r result) float64 { return r.rps })
		cratio, clo, chi := spread(ratios, func(r result) float64 { return r.cpuUS })
		// The mean of the rounds' CPU ratios: on this machine it agrees
		// between repeat runs better than their median does.
		var cavg float64
		for _, r := range ratios {
			cavg += r.cpuUS / float64(len(ratios))
		}
		fmt.Printf("| %s | %.0f | %.3f (%.3f-%.3f) | %.2f ms | %.2f µs | %.3f, %.3f (%.3f-%.3f) |\n", sc.name, rps, ratio, lo, hi, p99, cpu, cratio, cavg, clo, chi)
		rows = append(rows, row{sc.name, rps, ratio, lo, hi, p99, cpu, cratio, cavg, clo, chi})
	}
	fmt.Printf("\n%d rounds of %s (after %s warm-up), wrk -t%d -c%d, %d tokens; servers on CPU %s, wrk on CPU %s; medians.\n",
		*rounds, *duration, *warmup, *threads, *conns, *ntokens, *serverCPU, *loadCPU)
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(rows, "", "  ")
		if err := os.WriteFile(*jsonOut, b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func runScenario(sc scenario, caddyBin, work string, startPinned func(string, ...string) (*exec.Cmd, error),
	repl map[string]string, tokens, script, loadCPU string, threads, conns int, warmup, duration time.Duration,
	profile string) (result, error) {
	inst, err := startCaddy(sc, caddyBin, work, startPinned, repl, tokens)
	if err != nil {
		return result{}, err
	}
	defer proc.Stop(inst.cmd)
	load := loader{tokens: tokens, script: script, cpus: loadCPU, threads: threads, conns: conns}
	if _, err := load.run(inst.url, warmup); err != nil {
		return result{}, fmt.Errorf("warm-up: %w", err)
	}
	return load.measure(inst, duration, profile)
}

// instance is a running caddy process under test.
type instance struct {
	cmd   *exec.Cmd
	url   string
	admin int
}

// startCaddy starts caddy with a scenario's site and checks once that a
// token passes end to end.
func startCaddy(sc scenario, caddyBin, work string, startPinned func(string, ...string) (*exec.Cmd, error),
	repl map[string]string, tokens string) (*instance, error) {
	port, admin := proc.FreePort(), proc.FreePort()
	body := sc.caddyfile
	for k, v := range repl {
		body = strings.ReplaceAll(body, k, v)
	}
	cfg := fmt.Sprintf("{\n\tadmin 127.0.0.1:%d\n}\n:%d {\n\tbind 127.0.0.1\n\t%s\n}\n", admin, port, body)
	path := filepath.Join(work, fmt.Sprintf("Caddyfile-%d", port))
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	cmd, err := startPinned(caddyBin, "run", "--config", path, "--adapter", "caddyfile")
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	if err := waitPort(addr, 20*time.Second); err != nil {
		proc.Stop(cmd)
		return nil, err
	}
	inst := &instance{cmd: cmd, url: "http://" + addr + "/api/item", admin: admin}
	req, _ := http.NewRequest("GET", inst.url, nil)
	first, _ := os.ReadFile(tokens)
	req.Header.Set("Authorization", "Bearer "+strings.SplitN(string(first), "\n", 2)[0])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		proc.Stop(cmd)
		return nil, err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		proc.Stop(cmd)
		return nil, fmt.Errorf("probe request: status %d", resp.StatusCode)
	}
	return inst, nil
}

// loader runs wrk, pinned, with the tokens script.
type loader struct {
	tokens, script, cpus string
	threads, conns       int
}

func (l loader) run(url string, d time.Duration) (string, error) {
	c := exec.Command("taskset", "-c", l.cpus, "wrk", "-t", strconv.Itoa(l.threads), "-c", strconv.Itoa(l.conns),
		"-d", d.String(), "--latency", "-s", l.script, url)
	c.Env = append(os.Environ(), "TOKENS_FILE="+l.tokens)
	out, err := c.CombinedOutput()
	return string(out), err
}

// measure loads inst for d and charges the caddy process's CPU time
// over that run to the requests wrk counted.
func (l loader) measure(inst *instance, d time.Duration, profile string) (result, error) {
	// taskset execs caddy, so the PID started is the proxy's.
	pid := inst.cmd.Process.Pid
	cpu0, err := procstat.CPU(pid)
	if err != nil {
		return result{}, err
	}
	profiled := make(chan error, 1)
	if profile != "" {
		// Caddy's admin endpoint serves net/http/pprof.
		go func() {
			profiled <- fetchProfile(fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/profile?seconds=%d", inst.admin, max(1, int(d.Seconds())-1)), profile)
		}()
	} else {
		profiled <- nil
	}
	out, err := l.run(inst.url, d)
	if err != nil {
		return result{}, fmt.Errorf("wrk: %w\n%s", err, out)
	}
	if err := <-profiled; err != nil {
		return result{}, err
	}
	cpu1, err := procstat.CPU(pid)
	if err != nil {
		return result{}, err
	}
	res, err := parseWrk(out)
	if err != nil {
		return result{}, err
	}
	m := requestsRe.FindStringSubmatch(out)
	if m == nil {
		return result{}, fmt.Errorf("cannot read the request count in wrk's output:\n%s", out)
	}
	res.requests, _ = strconv.ParseFloat(m[1], 64)
	res.cpu = cpu1 - cpu0
	res.cpuUS = float64(res.cpu.Nanoseconds()) / 1e3 / res.requests
	return res, nil
}

var (
	rpsRe    = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	p99Re    = regexp.MustCompile(`\s99%\s+([0-9.]+)(us|ms|s)`)
	non2xxRe = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
	// "1234 requests in 10.00s"
	requestsRe = regexp.MustCompile(`(\d+) requests in `)
)

func parseWrk(out string) (result, error) {
	if m := non2xxRe.FindStringSubmatch(out); m != nil {
		return result{}, fmt.Errorf("%s responses were not 2xx:\n%s", m[1], out)
	}
	m := rpsRe.FindStringSubmatch(out)
	p := p99Re.FindStringSubmatch(out)
	if m == nil || p == nil {
		return result{}, fmt.Errorf("cannot read wrk output:\n%s", out)
	}
	rps, _ := strconv.ParseFloat(m[1], 64)
	v, _ := strconv.ParseFloat(p[1], 64)
	switch p[2] {
	case "us":
		v /= 1000
	case "s":
		v *= 1000
	}
	return result{rps: rps, p99ms: v}, nil
}

// wrkScript rotates each connection through the tokens file: many
// clients, each reusing its own token.
const wrkScript = `
local tokens = {}
for line in io.lines(os.getenv("TOKENS_FILE")) do
  if #line > 0 then tokens[#tokens + 1] = line end
end
local i = math.random(#tokens)
request = function()
  i = (i % #tokens) + 1
  return wrk.format("GET", nil, { ["Authorization"] = "Bearer " .. tokens[i] })
end
`

// profilePath names the profile of one scenario's run in one round, or
// is empty when no profiles are asked for.
func profilePath(dir string, round int, scenario string) string {
	if dir == "" {
		return ""
	}
	name := strings.Trim(regexp.MustCompile(`[^a-z0-9]+`).ReplaceAllString(strings.ToLower(scenario), "-"), "-")
	return filepath.Join(dir, fmt.Sprintf("%d-%s.pprof", round, name))
}

func fetchProfile(url, path string) error {
	resp, err := http.Get(url)
	if err != nil {
		return fmt.Errorf("cpu profile: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return fmt.Errorf("cpu profile: status %d, %v: %s", resp.StatusCode, err, data)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return fmt.Errorf("cpu profile: %w", err)
	}
	return nil
}

func median(rs []result, f func(result) float64) float64 {
	vals := make([]float64, len(rs))
	for i, r := range rs {
		vals[i] = f(r)
	}
	slices.Sort(vals)
	switch n := len(vals); {
	case n == 0:
		return 0
	case n%2 == 0:
		return (vals[n/2-1] + vals[n/2]) / 2
	default:
		return vals[n/2]
	}
}

func waitPort(addr string, within time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	for ctx.Err() == nil {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return errors.New("nothing listens on " + addr)
}
