// Package deploy tests the deployment artifacts: the kustomize base in
// kubernetes/ and the Dockerfile at the repository root. It is a module
// of its own so that kustomize and the Kubernetes API types stay out of
// the product's dependency graph.
package deploy

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

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
	order       []string // kind/name, as rendered
}

// render builds the base with the kustomize Go API (what `kubectl
// kustomize` runs) and decodes every object strictly.
func render(t *testing.T) *rendered {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	resMap, err := k.Run(filesys.MakeFsOnDisk(), base)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", base, err)
	}
	out := &rendered{
		deployments: map[string]*appsv1.Deployment{},
		services:    map[string]*corev1.Service{},
		configMaps:  map[string]*corev1.ConfigMap{},
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

	// The object list: what the README's quick start says gets applied.
	want := []string{"ConfigMap/caddy-revocation-caddyfile-*", "Deployment/app", "Deployment/redis-example", "Service/app", "Service/redis-example"}
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
			if p.TimeoutSeconds < 2 {
				t.Fatalf("%s: timeoutSeconds %d leaves no room for starting the command", what, p.TimeoutSeconds)
			}
		}
		check("readinessProbe", sidecar.ReadinessProbe, false)
		check("livenessProbe", sidecar.LivenessProbe, true)
	})

	t.Run("secrets come from a Secret", func(t *testing.T) {
		for _, name := range []string{"JWT_SECRET", "REDIS_PASSWORD"} {
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
