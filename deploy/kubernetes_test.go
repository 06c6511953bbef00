// Package deploy tests the deployment artifacts: the kustomize base in
// kubernetes/ and the Dockerfile at the repository root. It is a module
// of its own so that kustomize and the Kubernetes API types stay out of
// the product's dependency graph.
package deploy

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/json"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// base is the kustomize base under test, relative to this module.
const base = "kubernetes"

const sidecarName = "caddy-revocation"

// rendered is the base as kustomize builds it, each object decoded into
// its Kubernetes API type.
type rendered struct {
	deployments map[string]*appsv1.Deployment
	services    map[string]*corev1.Service
	configMaps  map[string]*corev1.ConfigMap
	secrets     map[string]*corev1.Secret
	order       []string // kind/name, as rendered
}

// filledSecrets is secrets.env as the Kubernetes quick start (docs/operating.md) has the user
// write it.
const filledSecrets = "jwt-secret=c2VjcmV0LW9mLXRoZS1hcHA+/=\nredis-password=cmVkaXMtcGFzc3dvcmQ=\nhash-key=aGFzaC1rZXktb2YtdGhlLWRlbnlsaXN0\n"

// baseFS copies the base into memory, as it is on disk, plus secrets.env
// when secretsEnv is not empty: the step the user takes before applying.
func baseFS(t *testing.T, secretsEnv string) filesys.FileSystem {
	t.Helper()
	fs := filesys.MakeFsInMemory()
	entries, err := os.ReadDir(base)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() || e.Name() == "secrets.env" {
			continue // a developer's own secrets.env must not leak into the test
		}
		if err := fs.WriteFile(filepath.Join(base, e.Name()), []byte(readFile(t, filepath.Join(base, e.Name())))); err != nil {
			t.Fatal(err)
		}
	}
	if secretsEnv != "" {
		if err := fs.WriteFile(filepath.Join(base, "secrets.env"), []byte(secretsEnv)); err != nil {
			t.Fatal(err)
		}
	}
	return fs
}

// render builds the base with the kustomize Go API (what `kubectl
// kustomize` runs) and decodes every object strictly.
func render(t *testing.T) *rendered {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	resMap, err := k.Run(baseFS(t, filledSecrets), base)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", base, err)
	}
	out := &rendered{
		deployments: map[string]*appsv1.Deployment{},
		services:    map[string]*corev1.Service{},
		configMaps:  map[string]*corev1.ConfigMap{},
		secrets:     map[string]*corev1.Secret{},
	}
	for _, res := range resMap.Resources() {
		data, err := res.MarshalJSON()
		if err != nil {
			t.Fatalf("%s/%s: %v", res.GetKind(), res.GetName(), err)
		}
		gvk := res.GetGvk()
		id := res.GetKind() + "/" + res.GetName()
		out.order = append(out.order, id)
		switch gvk.ApiVersion() + " " + gvk.Kind {
		case "apps/v1 Deployment":
			var d appsv1.Deployment
			decodeStrict(t, id, data, &d)
			out.deployments[d.Name] = &d
		case "v1 Service":
			var s corev1.Service
			decodeStrict(t, id, data, &s)
			out.services[s.Name] = &s
		case "v1 ConfigMap":
			var c corev1.ConfigMap
			decodeStrict(t, id, data, &c)
			out.configMaps[c.Name] = &c
		case "v1 Secret":
			var s corev1.Secret
			decodeStrict(t, id, data, &s)
			out.secrets[s.Name] = &s
		default:
			t.Fatalf("%s: %s %s is not a kind this test knows how to check", id, gvk.ApiVersion(), gvk.Kind)
		}
	}
	return out
}

// decodeStrict decodes as the API server's strict field validation does:
// case-sensitive, and an unknown or duplicated field is an error.
func decodeStrict(t *testing.T, id string, data []byte, into any) {
	t.Helper()
	if err := strictUnmarshal(data, into); err != nil {
		t.Fatalf("%s: %v\n%s", id, err, data)
	}
}

func strictUnmarshal(data []byte, into any) error {
	strictErrs, err := json.UnmarshalStrict(data, into)
	if err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	if len(strictErrs) > 0 {
		return fmt.Errorf("strict decoding: %v", strictErrs)
	}
	return nil
}

func TestStrictDecodingRejectsUnknownFields(t *testing.T) {
	// The decoder render uses must have teeth: a misspelt or misplaced
	// field is an error, not silently dropped.
	for _, bad := range []string{
		`{"apiVersion":"v1","kind":"Service","metadata":{"name":"x"},"spec":{"ports":[{"port":80,"targetport":"http"}]}}`,
		`{"apiVersion":"v1","kind":"Service","metadata":{"name":"x"},"spec":{"readinessProbe":{}}}`,
		`{"apiVersion":"v1","kind":"Service","metadata":{"name":"x","name":"y"}}`,
	} {
		var s corev1.Service
		if err := strictUnmarshal([]byte(bad), &s); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
	var s corev1.Service
	if err := strictUnmarshal([]byte(`{"apiVersion":"v1","kind":"Service","metadata":{"name":"x"},"spec":{"ports":[{"port":80,"targetPort":"http"}]}}`), &s); err != nil {
		t.Fatalf("refused a valid Service: %v", err)
	}
}

func TestKustomizeBase(t *testing.T) {
	r := render(t)
	caddyfile := readFile(t, filepath.Join(base, "Caddyfile"))

	// The object list: what the Kubernetes quick start (docs/operating.md) says gets applied.
	want := []string{"ConfigMap/caddy-revocation-caddyfile-*", "Deployment/app", "Deployment/redis-example", "Secret/caddy-revocation-*", "Service/app", "Service/redis-example"}
	got := slices.Sorted(slices.Values(r.order))
	if len(got) != len(want) {
		t.Fatalf("rendered %v, want %v", got, want)
	}
	for i, w := range want {
		if ok, _ := filepath.Match(w, got[i]); !ok {
			t.Fatalf("rendered %v, want %v", got, want)
		}
	}

	app := r.deployments["app"]
	if app == nil {
		t.Fatal("no Deployment app")
	}
	pod := app.Spec.Template.Spec
	sidecar := container(t, pod, sidecarName)
	appC := container(t, pod, "app")

	t.Run("configmap is the Caddyfile", func(t *testing.T) {
		vol := volumeMountedAt(t, pod, sidecar, "/etc/caddy")
		if vol.ConfigMap == nil {
			t.Fatalf("/etc/caddy is not a ConfigMap volume")
		}
		cm := r.configMaps[vol.ConfigMap.Name]
		if cm == nil {
			t.Fatalf("volume names ConfigMap %q, which the base does not render", vol.ConfigMap.Name)
		}
		if got := cm.Data["Caddyfile"]; got != caddyfile {
			t.Fatalf("ConfigMap %s differs from %s/Caddyfile", cm.Name, base)
		}
		if !slices.Equal(sidecar.Args, []string{"run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"}) {
			t.Fatalf("sidecar args %q do not run /etc/caddy/Caddyfile", sidecar.Args)
		}
	})

	t.Run("only the sidecar is exposed", func(t *testing.T) {
		svc := r.services["app"]
		if svc == nil {
			t.Fatal("no Service app")
		}
		for k, v := range svc.Spec.Selector {
			if app.Spec.Template.Labels[k] != v {
				t.Fatalf("Service selector %v does not select the pods (labels %v)", svc.Spec.Selector, app.Spec.Template.Labels)
			}
		}
		if len(svc.Spec.Ports) == 0 {
			t.Fatal("Service has no ports")
		}
		for _, p := range svc.Spec.Ports {
			if !targets(sidecar, p.TargetPort) {
				t.Errorf("Service port %s targets %s, not a port of the sidecar", p.Name, p.TargetPort.String())
			}
			if targets(appC, p.TargetPort) {
				t.Errorf("Service port %s targets the app", p.Name)
			}
		}
		if len(appC.Ports) != 0 {
			t.Errorf("the app declares ports %v; it must only listen on localhost", appC.Ports)
		}
		if pod.HostNetwork {
			t.Error("hostNetwork would expose the app's localhost port")
		}
	})

	t.Run("app listens on localhost and the sidecar proxies to it", func(t *testing.T) {
		listen := ""
		for _, a := range appC.Args {
			if v, ok := strings.CutPrefix(a, "-listen="); ok {
				listen = v
			}
		}
		host, _, err := net.SplitHostPort(listen)
		if err != nil || !(host == "localhost" || net.ParseIP(host) != nil && net.ParseIP(host).IsLoopback()) {
			t.Fatalf("app listens on %q, want a loopback address", listen)
		}
		if got := envValue(t, sidecar, "UPSTREAM"); got != listen {
			t.Fatalf("sidecar UPSTREAM %q, app listens on %q", got, listen)
		}
		if got := caddyfileDefault(t, caddyfile, "UPSTREAM"); got != listen {
			t.Fatalf("Caddyfile's default UPSTREAM %q, app listens on %q", got, listen)
		}
	})

	t.Run("ports agree with the Caddyfile", func(t *testing.T) {
		for name, env := range map[string]string{"http": "LISTEN_PORT", "metrics": "METRICS_PORT"} {
			p := portNamed(t, sidecar, name)
			if def := caddyfileDefault(t, caddyfile, env); def != fmt.Sprint(p.ContainerPort) {
				t.Errorf("container port %s is %d, the Caddyfile listens on {$%s:%s}", name, p.ContainerPort, env, def)
			}
		}
		if got := app.Spec.Template.Annotations["prometheus.io/port"]; got != fmt.Sprint(portNamed(t, sidecar, "metrics").ContainerPort) {
			t.Errorf("prometheus.io/port %q is not the metrics port", got)
		}
		if !regexp.MustCompile(`(?m)^\tadmin 127\.0\.0\.1:\{\$ADMIN_PORT:2019\}$`).MatchString(caddyfile) {
			t.Error("the Caddyfile's admin endpoint is not on loopback (admin 127.0.0.1:{$ADMIN_PORT:2019})")
		}
	})

	t.Run("probes run the health command", func(t *testing.T) {
		entry := dockerEntrypoint(t)
		check := func(what string, p *corev1.Probe, live bool) {
			t.Helper()
			if p == nil || p.Exec == nil {
				t.Fatalf("%s: want an exec probe (the admin endpoint stays on localhost)", what)
			}
			cmd := p.Exec.Command
			if len(cmd) < 3 || cmd[0] != entry || cmd[1] != "revocation" || cmd[2] != "health" {
				t.Fatalf("%s runs %q, want %s revocation health ...", what, cmd, entry)
			}
			if slices.Contains(cmd, "--live") != live {
				t.Fatalf("%s runs %q: --live is for liveness only", what, cmd)
			}
			// The probe finds the admin endpoint where the container's
			// own Caddyfile puts it, not at a default it might have left.
			if i := slices.Index(cmd, "--config"); i < 0 || i+1 >= len(cmd) || !slices.Contains(sidecar.Args, cmd[i+1]) {
				t.Fatalf("%s runs %q: want --config with the Caddyfile the container runs (%q)", what, cmd, sidecar.Args)
			}
			if p.TimeoutSeconds < 2 {
				t.Fatalf("%s: timeoutSeconds %d leaves no room for starting the command", what, p.TimeoutSeconds)
			}
		}
		check("readinessProbe", sidecar.ReadinessProbe, false)
		check("livenessProbe", sidecar.LivenessProbe, true)
	})

	t.Run("secrets come from a Secret", func(t *testing.T) {
		for _, name := range []string{"JWT_SECRET", "REDIS_PASSWORD", "REVOCATION_HASH_KEY"} {
			e := env(t, sidecar, name)
			if e.Value != "" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
				t.Errorf("%s is not a secretKeyRef", name)
			}
			if !strings.Contains(caddyfile, "{env."+name+"}") {
				t.Errorf("the Caddyfile does not read {env.%s}", name)
			}
		}
		// Every value the Caddyfile needs without a default is provided.
		for _, m := range regexp.MustCompile(`\{(?:env\.|\$)([A-Z_]+)\}`).FindAllStringSubmatch(caddyfile, -1) {
			env(t, sidecar, m[1])
		}
		if strings.Contains(caddyfile, "hmac_secret ") && !strings.Contains(caddyfile, "hmac_secret {env.JWT_SECRET}") {
			t.Error("hmac_secret is not the {env.JWT_SECRET} placeholder")
		}
		// The identities in Redis are keyed: a reader of Redis cannot
		// test a list of user names against them.
		if !regexp.MustCompile(`(?m)^\s*hash_key \{env\.REVOCATION_HASH_KEY\}$`).MatchString(caddyfile) {
			t.Error("the Caddyfile has no hash_key {env.REVOCATION_HASH_KEY}")
		}
	})

	t.Run("the Secret is generated from secrets.env", func(t *testing.T) {
		for name, d := range r.deployments {
			for _, c := range d.Spec.Template.Spec.Containers {
				for _, e := range c.Env {
					if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
						continue
					}
					ref := e.ValueFrom.SecretKeyRef
					sec := r.secrets[ref.Name]
					if sec == nil {
						t.Errorf("%s/%s: env %s names Secret %q, which the base does not generate", name, c.Name, e.Name, ref.Name)
						continue
					}
					if _, ok := sec.Data[ref.Key]; !ok {
						t.Errorf("%s/%s: env %s names key %q, not in secrets.env", name, c.Name, e.Name, ref.Key)
					}
				}
			}
		}
		for _, sec := range r.secrets {
			if got := string(sec.Data["jwt-secret"]); got != "c2VjcmV0LW9mLXRoZS1hcHA+/=" {
				t.Errorf("jwt-secret %q: a base64 value with '=' must survive as written", got)
			}
		}
		// The example lists exactly the keys the pods read.
		example := readFile(t, filepath.Join(base, "secrets.env.example"))
		for _, key := range []string{"jwt-secret=", "redis-password=", "hash-key="} {
			if !strings.Contains(example, "\n"+key+"\n") {
				t.Errorf("secrets.env.example has no empty %s line", key)
			}
		}
		if !strings.Contains(readFile(t, filepath.Join(base, ".gitignore")), "secrets.env\n") {
			t.Error("secrets.env is not git-ignored")
		}
		// The Dockerfile copies the whole repository into its build stage.
		if !strings.Contains(readFile(t, filepath.Join("..", ".dockerignore")), "\ndeploy/kubernetes/secrets.env\n") {
			t.Error("secrets.env is not in .dockerignore: docker build would copy it into a layer")
		}
	})

	t.Run("the image is pinned", func(t *testing.T) {
		img := sidecar.Image
		name, tag, ok := strings.Cut(img[strings.LastIndex(img, "/")+1:], ":")
		if !ok || tag == "" || tag == "latest" || name != "caddy-revocation" || !strings.Contains(img, "/") {
			t.Errorf("sidecar image %q: want <registry>/caddy-revocation:<tag>, with a tag other than latest", img)
		}
	})

	t.Run("no password on a command line", func(t *testing.T) {
		for name, d := range r.deployments {
			for _, c := range d.Spec.Template.Spec.Containers {
				line := strings.Join(append(slices.Clone(c.Command), c.Args...), " ")
				if strings.Contains(line, "$(REDIS_PASSWORD)") || strings.Contains(line, "$(JWT_SECRET)") || strings.Contains(line, "--requirepass") {
					t.Errorf("%s/%s: a secret on the command line: %s", name, c.Name, line)
				}
			}
		}
	})

	t.Run("redis example is labelled and used", func(t *testing.T) {
		redisSvc := r.services["redis-example"]
		redisDep := r.deployments["redis-example"]
		if redisSvc == nil || redisDep == nil {
			t.Fatal("no redis-example Deployment and Service")
		}
		for _, m := range []map[string]string{redisSvc.Labels, redisDep.Labels} {
			if m["caddy-revocation.example/only"] != "true" {
				t.Errorf("redis-example is not labelled as an example: %v", m)
			}
		}
		want := fmt.Sprintf("redis://%s:%d", redisSvc.Name, redisSvc.Spec.Ports[0].Port)
		if got := envValue(t, sidecar, "REDIS_URL"); got != want {
			t.Errorf("sidecar REDIS_URL %q, want %q", got, want)
		}
	})

	t.Run("writable state on a volume", func(t *testing.T) {
		for _, name := range []string{"XDG_DATA_HOME", "XDG_CONFIG_HOME"} {
			dir := envValue(t, sidecar, name)
			ok := false
			for _, m := range sidecar.VolumeMounts {
				if (dir == m.MountPath || strings.HasPrefix(dir, m.MountPath+"/")) && !m.ReadOnly {
					v := volume(t, pod, m.Name)
					ok = v.EmptyDir != nil
				}
			}
			if !ok {
				t.Errorf("%s=%s is not on a writable emptyDir", name, dir)
			}
		}
	})

	for name, d := range r.deployments {
		t.Run("hardening of "+name, func(t *testing.T) {
			ps := d.Spec.Template.Spec
			if ps.AutomountServiceAccountToken == nil || *ps.AutomountServiceAccountToken {
				t.Error("automountServiceAccountToken is not false")
			}
			for _, c := range ps.Containers {
				checkResources(t, c)
				checkSecurity(t, ps, c)
			}
			if len(ps.InitContainers) > 0 {
				t.Error("init containers are not checked by this test")
			}
		})
	}
}

func checkResources(t *testing.T, c corev1.Container) {
	t.Helper()
	for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, hasReq := c.Resources.Requests[res]
		lim, hasLim := c.Resources.Limits[res]
		if !hasReq || !hasLim {
			t.Errorf("%s: %s request and limit are not both set", c.Name, res)
			continue
		}
		if req.Cmp(lim) > 0 {
			t.Errorf("%s: %s request %s above limit %s", c.Name, res, req.String(), lim.String())
		}
	}
}

// checkSecurity checks the effective security context of a container:
// its own settings, else the pod's.
func checkSecurity(t *testing.T, ps corev1.PodSpec, c corev1.Container) {
	t.Helper()
	sc := c.SecurityContext
	psc := ps.SecurityContext
	if sc == nil {
		t.Fatalf("%s: no securityContext", c.Name)
	}
	nonRoot := sc.RunAsNonRoot
	if nonRoot == nil && psc != nil {
		nonRoot = psc.RunAsNonRoot
	}
	if nonRoot == nil || !*nonRoot {
		t.Errorf("%s: runAsNonRoot is not true", c.Name)
	}
	uid := sc.RunAsUser
	if uid == nil && psc != nil {
		uid = psc.RunAsUser
	}
	if uid != nil && *uid == 0 {
		t.Errorf("%s: runs as uid 0", c.Name)
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Errorf("%s: readOnlyRootFilesystem is not true", c.Name)
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("%s: allowPrivilegeEscalation is not false", c.Name)
	}
	if sc.Privileged != nil && *sc.Privileged {
		t.Errorf("%s: privileged", c.Name)
	}
	if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 {
		t.Errorf("%s: capabilities do not drop ALL (or add some back)", c.Name)
	}
	seccomp := sc.SeccompProfile
	if seccomp == nil && psc != nil {
		seccomp = psc.SeccompProfile
	}
	if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("%s: seccompProfile is not RuntimeDefault", c.Name)
	}
}

func container(t *testing.T, ps corev1.PodSpec, name string) corev1.Container {
	t.Helper()
	for _, c := range ps.Containers {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no container %q", name)
	return corev1.Container{}
}

func volume(t *testing.T, ps corev1.PodSpec, name string) corev1.Volume {
	t.Helper()
	for _, v := range ps.Volumes {
		if v.Name == name {
			return v
		}
	}
	t.Fatalf("no volume %q", name)
	return corev1.Volume{}
}

func volumeMountedAt(t *testing.T, ps corev1.PodSpec, c corev1.Container, path string) corev1.Volume {
	t.Helper()
	for _, m := range c.VolumeMounts {
		if m.MountPath == path {
			return volume(t, ps, m.Name)
		}
	}
	t.Fatalf("%s: nothing mounted at %s", c.Name, path)
	return corev1.Volume{}
}

func env(t *testing.T, c corev1.Container, name string) corev1.EnvVar {
	t.Helper()
	for _, e := range c.Env {
		if e.Name == name {
			return e
		}
	}
	t.Fatalf("%s: no env %s", c.Name, name)
	return corev1.EnvVar{}
}

func envValue(t *testing.T, c corev1.Container, name string) string {
	t.Helper()
	e := env(t, c, name)
	if e.ValueFrom != nil {
		t.Fatalf("%s: env %s is not a plain value", c.Name, name)
	}
	return e.Value
}

func portNamed(t *testing.T, c corev1.Container, name string) corev1.ContainerPort {
	t.Helper()
	for _, p := range c.Ports {
		if p.Name == name {
			return p
		}
	}
	t.Fatalf("%s: no port named %s", c.Name, name)
	return corev1.ContainerPort{}
}

// targets reports whether a Service targetPort lands on one of c's ports.
func targets(c corev1.Container, tp intstr.IntOrString) bool {
	for _, p := range c.Ports {
		if tp.Type == intstr.String && tp.StrVal == p.Name || tp.Type == intstr.Int && tp.IntVal == p.ContainerPort {
			return true
		}
	}
	return false
}

// caddyfileDefault returns the default of {$NAME:default} in a Caddyfile.
func caddyfileDefault(t *testing.T, caddyfile, name string) string {
	t.Helper()
	m := regexp.MustCompile(`\{\$` + name + `:([^}]*)\}`).FindStringSubmatch(caddyfile)
	if m == nil {
		t.Fatalf("the Caddyfile has no {$%s:...}", name)
	}
	return m[1]
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// Without secrets.env, kustomize refuses to build, naming the file: the
// Secret the pods need is never silently missing.
func TestKustomizeBaseNeedsSecretsEnv(t *testing.T) {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	_, err := k.Run(baseFS(t, ""), base)
	if err == nil || !strings.Contains(err.Error(), "secrets.env") {
		t.Fatalf("build without secrets.env: %v, want an error naming secrets.env", err)
	}
}

// The example Redis's command, run as the container runs it (sh and a
// real redis-server, on a free loopback port): the password from the
// environment is required, and it is on no process's command line.
func TestRedisExampleCommand(t *testing.T) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatal("redis-server not on PATH (scripts/test.sh installs it)")
	}
	r := render(t)
	c := container(t, r.deployments["redis-example"].Spec.Template.Spec, "redis")
	if len(c.Args) > 0 || len(c.Command) < 3 || c.Command[0] != "sh" || c.Command[1] != "-c" {
		t.Fatalf("redis command %q, args %q: want sh -c <script> [$0]", c.Command, c.Args)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	password := "pw-" + strconv.Itoa(os.Getpid()) + "-not-on-a-command-line"
	dir := t.TempDir()
	// The script passes its own arguments on to redis-server: here, a
	// loopback port and a scratch directory instead of the pod's.
	args := append(slices.Clone(c.Command[1:]), "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir)
	if len(c.Command) == 3 {
		args = slices.Insert(args, 2, "redis-example")
	}
	cmd := exec.Command("sh", args...)
	cmd.Env = append(os.Environ(), "REDIS_PASSWORD="+password)
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	// redis-server, exec'd in a subshell, may outlive sh and hold the
	// output pipe: bound the wait for it.
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	cli := func(auth string, a ...string) string {
		c := exec.Command("redis-cli", append([]string{"-p", strconv.Itoa(port)}, a...)...)
		c.Env = append(os.Environ(), "REDISCLI_AUTH="+auth)
		out, _ := c.CombinedOutput()
		return strings.TrimSpace(string(out))
	}
	serverPID := 0
	t.Cleanup(func() {
		cli(password, "SHUTDOWN", "NOSAVE")
		if serverPID > 0 {
			if p, err := os.FindProcess(serverPID); err == nil {
				_ = p.Kill() // stops only the redis-server this test started
			}
		}
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	deadline := time.Now().Add(10 * time.Second)
	for cli(password, "PING") != "PONG" {
		if time.Now().After(deadline) {
			t.Fatalf("redis did not answer with the password:\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	m := regexp.MustCompile(`process_id:(\d+)`).FindStringSubmatch(cli(password, "INFO", "server"))
	if m == nil {
		t.Fatal("INFO server has no process_id")
	}
	serverPID, _ = strconv.Atoi(m[1])
	if out := cli("", "PING"); !strings.Contains(out, "NOAUTH") {
		t.Fatalf("PING without the password: %q, want NOAUTH", out)
	}
	for _, pid := range []int{cmd.Process.Pid, serverPID} {
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(cmdline), password) {
			t.Fatalf("process %d's command line shows the password: %q", pid, cmdline)
		}
	}
}

// The overlay of the Kubernetes quick start (docs/operating.md), written
// as the docs write it, names the image the user pushed: kubectl's
// built-in kustomize has no "edit", so the overlay is how the image is
// set. The docs' heredoc is rendered over the base, as kubectl
// kustomize deploy/local renders it.
func TestKustomizeOverlayOfTheDocs(t *testing.T) {
	page := readFile(t, filepath.Join(repoRoot, "docs", "operating.md"))
	_, rest, ok := strings.Cut(page, "<!-- doc-test: overlay -->")
	if !ok {
		t.Fatal("docs/operating.md has no <!-- doc-test: overlay --> block")
	}
	_, rest, ok = strings.Cut(rest, "cat > deploy/local/kustomization.yaml <<EOF\n")
	if !ok {
		t.Fatal("the overlay block does not write deploy/local/kustomization.yaml with a heredoc")
	}
	var overlay []string
	for line := range strings.SplitSeq(rest, "\n") {
		line = strings.TrimPrefix(line, "   ") // the block sits in a list item
		if line == "EOF" {
			break
		}
		overlay = append(overlay, line)
	}
	const image, tag = "reg.test/team/caddy-revocation", "abc1234"
	text := strings.NewReplacer("$IMAGE", image, "$TAG", tag).Replace(strings.Join(overlay, "\n") + "\n")
	fs := baseFS(t, filledSecrets)
	if err := fs.WriteFile(filepath.Join("local", "kustomization.yaml"), []byte(text)); err != nil {
		t.Fatal(err)
	}
	resMap, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(fs, "local")
	if err != nil {
		t.Fatalf("kustomize build of the docs' overlay:\n%s\n%v", text, err)
	}
	found := false
	for _, res := range resMap.Resources() {
		if res.GetKind() != "Deployment" || res.GetName() != "app" {
			continue
		}
		data, err := res.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		var d appsv1.Deployment
		decodeStrict(t, "Deployment/app", data, &d)
		found = true
		if got := container(t, d.Spec.Template.Spec, sidecarName).Image; got != image+":"+tag {
			t.Fatalf("the overlay renders the sidecar image %q, want %q:\n%s", got, image+":"+tag, text)
		}
	}
	if !found {
		t.Fatal("the overlay renders no Deployment app")
	}
}

// The quick start's secrets step (docs/operating.md, the block after
// <!-- doc-test: secrets -->), run as written, writes every key the
// example lists, each with a value the sidecar accepts; the base then
// renders with it.
func TestSecretsStepOfTheDocs(t *testing.T) {
	page := readFile(t, filepath.Join(repoRoot, "docs", "operating.md"))
	_, rest, ok := strings.Cut(page, "<!-- doc-test: secrets -->")
	if !ok {
		t.Fatal("docs/operating.md has no <!-- doc-test: secrets --> block")
	}
	_, rest, ok = strings.Cut(rest, "```sh\n")
	if !ok {
		t.Fatal("the secrets block is not a sh block")
	}
	script, _, _ := strings.Cut(rest, "```")
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "deploy", "kubernetes"), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", script)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the secrets step:\n%s\n%v: %s", script, err, out)
	}
	path := filepath.Join(dir, "deploy", "kubernetes", "secrets.env")
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm()&0o077 != 0 {
		t.Errorf("secrets.env is %v: readable by others", info.Mode().Perm())
	}
	written := readFile(t, path)
	got := map[string]string{}
	for line := range strings.SplitSeq(strings.TrimSpace(written), "\n") {
		k, v, _ := strings.Cut(line, "=")
		got[k] = v
	}
	example := readFile(t, filepath.Join(repoRoot, "deploy", "kubernetes", "secrets.env.example"))
	for _, m := range regexp.MustCompile(`(?m)^([a-z-]+)=$`).FindAllStringSubmatch(example, -1) {
		v, ok := got[m[1]]
		switch {
		case !ok:
			t.Errorf("the secrets step writes no %s (secrets.env.example lists it)", m[1])
		case len(v) < 16:
			t.Errorf("the secrets step writes %s of %d bytes: hash_key and the JWT secret need at least 16", m[1], len(v))
		}
		delete(got, m[1])
	}
	for k := range got {
		t.Errorf("the secrets step writes %s, which secrets.env.example does not list", k)
	}
	if a, b := regexp.MustCompile(`hash-key=(\S+)`).FindStringSubmatch(written), regexp.MustCompile(`jwt-secret=(\S+)`).FindStringSubmatch(written); a != nil && b != nil && a[1] == b[1] {
		t.Error("hash-key and jwt-secret are the same value")
	}
	if _, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(baseFS(t, written), base); err != nil {
		t.Fatalf("kustomize build with the secrets.env the step wrote: %v", err)
	}
}
