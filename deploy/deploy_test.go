// The deployment files are validated by parsing, not against schemas.
// kubeconform (and kubeval) cannot run offline here: they download the
// Kubernetes JSON schemas unless given a local copy, and this machine and CI
// reach only the Go module proxy, npm and Debian packages, none of which
// ships those schemas; `docker compose config` needs the compose plugin,
// which is not installed. (Strict decoding into k8s.io/api's types and
// compose-go's loader would work offline, but would add two large modules
// to go.mod for one test.) So this test parses every YAML file under
// deploy/ with goccy/go-yaml, checks what gridwatch needs of the
// manifests, and checks every option they pass against the real
// `gridwatch serve --help` of this tree.
package deploy_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goccy/go-yaml"
)

// Variables that are not gridwatch options but that gridwatch (or the S3
// client inside it) reads from the environment.
var otherEnv = map[string]bool{
	"AWS_ACCESS_KEY_ID":     true,
	"AWS_SECRET_ACCESS_KEY": true,
}

// Variables that must never be written in a manifest: they come from a
// Secret (Kubernetes) or from the operator's environment (Compose).
var secretEnv = []string{"DATABASE_URL", "GRIDWATCH_CLUSTER_SECRET", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "GRIDWATCH_ADMIN_TOKEN"}

// defaultShutdown is --shutdown-timeout's default.
const defaultShutdown = 15 * time.Second

// --- gridwatch's own options ----------------------------------------------

type serveOptions struct {
	flags map[string]bool // flag names without dashes
	env   map[string]bool // every "(env NAME)" the help names
}

var (
	optsOnce sync.Once
	opts     serveOptions
	optsErr  error
)

// gridwatchOptions builds ./cmd/gridwatch and reads the options of
// `gridwatch serve --help`.
func gridwatchOptions(t *testing.T) serveOptions {
	t.Helper()
	optsOnce.Do(func() { opts, optsErr = readOptions(repoRoot(t)) })
	if optsErr != nil {
		t.Fatal(optsErr)
	}
	return opts
}

func readOptions(root string) (serveOptions, error) {
	dir, err := os.MkdirTemp("", "gridwatch-deploy-test-")
	if err != nil {
		return serveOptions{}, err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "gridwatch")
	goTool := "go"
	if p := filepath.Join(os.Getenv("GOROOT"), "bin", "go"); os.Getenv("GOROOT") != "" {
		if _, err := os.Stat(p); err == nil {
			goTool = p
		}
	}
	build := exec.Command(goTool, "build", "-o", bin, "./cmd/gridwatch")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return serveOptions{}, fmt.Errorf("go build ./cmd/gridwatch: %v\n%s", err, out)
	}
	var out bytes.Buffer
	help := exec.Command(bin, "serve", "--help")
	help.Stdout, help.Stderr = &out, &out
	help.Env = []string{"PATH=" + os.Getenv("PATH")}
	_ = help.Run() // -h exits 2 after the usage
	text := out.String()
	if !strings.Contains(text, "Usage of gridwatch serve") {
		return serveOptions{}, fmt.Errorf("gridwatch serve --help printed no usage:\n%s", text)
	}
	o := serveOptions{flags: map[string]bool{}, env: map[string]bool{}}
	for _, m := range regexp.MustCompile(`(?m)^  -([a-z0-9][a-z0-9-]*)`).FindAllStringSubmatch(text, -1) {
		o.flags[m[1]] = true
	}
	for _, m := range regexp.MustCompile(`\(env ([A-Z0-9_]+)\)`).FindAllStringSubmatch(text, -1) {
		o.env[m[1]] = true
	}
	if len(o.flags) < 10 || !o.flags["addr"] || !o.env["GRIDWATCH_ADDR"] {
		return serveOptions{}, fmt.Errorf("cannot read the flags from gridwatch serve --help:\n%s", text)
	}
	return o, nil
}

// repoRoot is the directory of gridwatch's go.mod, above the test's.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && regexp.MustCompile(`(?m)^module gridwatch\s*$`).Match(b) {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod of module gridwatch above the test's directory")
		}
		dir = parent
	}
}

// optionCheck collects the options the manifests pass that gridwatch does
// not know, with where each is passed, and reports them all at once.
type optionCheck struct {
	known   serveOptions
	unknown map[string][]string // "--name" or an env name → places
}

func newOptionCheck(t *testing.T) *optionCheck {
	return &optionCheck{known: gridwatchOptions(t), unknown: map[string][]string{}}
}

func (c *optionCheck) bad(what, where string) { c.unknown[what] = append(c.unknown[what], where) }

// flagName is the option an argument names ("--data-dir=/data" → data-dir),
// or "" for one that is not a flag.
func flagName(arg string) string {
	if !strings.HasPrefix(arg, "-") {
		return ""
	}
	name, _, _ := strings.Cut(strings.TrimLeft(arg, "-"), "=")
	return name
}

// args checks the flags in a command line.
func (c *optionCheck) args(where string, args []string) {
	for _, a := range args {
		if name := flagName(a); name != "" && !c.known.flags[name] {
			c.bad("--"+name, where+": "+a)
		}
	}
}

// envName checks one environment variable: GRIDWATCH_<NAME> must be the
// variable of --name; others must be ones gridwatch reads (its help names
// them, or they are the S3 client's).
func (c *optionCheck) envName(where, name string, helper bool) {
	if rest, ok := strings.CutPrefix(name, "GRIDWATCH_"); ok {
		flag := strings.ToLower(strings.ReplaceAll(rest, "_", "-"))
		if !c.known.flags[flag] {
			c.bad("--"+flag, where+": "+name)
		}
		return
	}
	if !c.known.env[name] && !otherEnv[name] && !helper {
		c.bad(name, where+": not an environment variable gridwatch reads")
	}
}

func (c *optionCheck) report(t *testing.T) {
	t.Helper()
	if len(c.unknown) == 0 {
		return
	}
	names := make([]string, 0, len(c.unknown))
	for n := range c.unknown {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	fmt.Fprintf(&b, "%d option(s) that `gridwatch serve --help` does not list:", len(names))
	for _, n := range names {
		fmt.Fprintf(&b, "\n  %s\n      %s", n, strings.Join(c.unknown[n], "\n      "))
	}
	t.Error(b.String())
}

// --- YAML --------------------------------------------------------------------

// readDocs parses every document of a YAML file.
func readDocs(t *testing.T, path string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var docs []map[string]any
	for i := 0; ; i++ {
		var doc map[string]any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: document %d: %v", rel(path), i, err)
		}
		if doc != nil {
			docs = append(docs, doc)
		}
	}
	if len(docs) == 0 {
		t.Fatalf("%s: no YAML document", rel(path))
	}
	return docs
}

func rel(path string) string {
	if i := strings.LastIndex(path, "/deploy/"); i >= 0 {
		return path[i+1:]
	}
	return path
}

// get walks maps by key; nil when a step is missing.
func get(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func str(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	default:
		return fmt.Sprint(x)
	}
}

func list(v any) []any { l, _ := v.([]any); return l }

func mapOf(v any) map[string]any { m, _ := v.(map[string]any); return m }

func strs(v any) []string {
	var out []string
	for _, x := range list(v) {
		out = append(out, str(x))
	}
	return out
}

func num(v any) (int, bool) {
	switch x := v.(type) {
	case int:
		return x, true
	case int64:
		return int(x), true
	case uint64:
		return int(x), true
	case float64:
		return int(x), x == float64(int(x))
	case string:
		n, err := strconv.Atoi(x)
		return n, err == nil
	}
	return 0, false
}

// labelsMatch reports whether every selector label is on the pod.
func labelsMatch(selector, pod map[string]any) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if str(pod[k]) != str(v) {
			return false
		}
	}
	return true
}

func portOf(addr string) (int, error) {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(p)
}

// TestYAMLParses parses every YAML file under deploy/.
func TestYAMLParses(t *testing.T) {
	root := filepath.Join(repoRoot(t), "deploy")
	n := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && (strings.HasSuffix(path, ".yaml") || strings.HasSuffix(path, ".yml")) {
			readDocs(t, path)
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 2 {
		t.Fatalf("found %d YAML files under deploy/; want compose.yaml and k8s/", n)
	}
}

// --- Kubernetes ----------------------------------------------------------------

// container is the gridwatch container of the workload, with what its
// options resolve to.
type container struct {
	spec      map[string]any
	where     string
	args      []string          // command after the binary, then args
	env       map[string]any    // name → env entry (value or valueFrom)
	fromMaps  map[string]string // name → value, from envFrom ConfigMaps
	portNames map[string]int    // container port name → number
}

// option is what --name is set to (a flag wins over the environment, which
// wins over a ConfigMap), and whether it is set.
func (c *container) option(name string) (string, bool) {
	val, set := "", false
	envName := "GRIDWATCH_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
	if v, ok := c.fromMaps[envName]; ok {
		val, set = v, true
	}
	if e, ok := c.env[envName]; ok {
		val, set = str(get(e, "value")), true
		if p := str(get(e, "valueFrom", "fieldRef", "fieldPath")); p != "" {
			val = "fieldRef:" + p
		}
	}
	for i, a := range c.args {
		if flagName(a) != name {
			continue
		}
		if _, v, ok := strings.Cut(a, "="); ok {
			val, set = v, true
		} else if i+1 < len(c.args) {
			val, set = c.args[i+1], true
		}
	}
	return val, set
}

// fieldRefs are the downward-API fields a value takes: its own fieldRef,
// or those of the $(VAR)s in it ("http://$(POD_IP):8080" → status.podIP).
func (c *container) fieldRefs(val string) []string {
	var out []string
	if p, ok := strings.CutPrefix(val, "fieldRef:"); ok {
		return []string{p}
	}
	for _, m := range regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`).FindAllStringSubmatch(val, -1) {
		if p := str(get(c.env[m[1]], "valueFrom", "fieldRef", "fieldPath")); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// resolvePort is a probe's or a Service's target port as a number.
func (c *container) resolvePort(v any) int {
	if n, ok := num(v); ok {
		return n
	}
	return c.portNames[str(v)]
}

func TestKubernetes(t *testing.T) {
	check := newOptionCheck(t)
	dir := filepath.Join(repoRoot(t), "deploy", "k8s")

	// The kustomization lists every manifest in the directory, and only those.
	kust := readDocs(t, filepath.Join(dir, "kustomization.yaml"))[0]
	if str(kust["kind"]) != "Kustomization" || !strings.HasPrefix(str(kust["apiVersion"]), "kustomize.config.k8s.io/") {
		t.Errorf("kustomization.yaml: kind %q apiVersion %q; want a kustomize.config.k8s.io Kustomization", kust["kind"], kust["apiVersion"])
	}
	resources := strs(kust["resources"])
	files, _ := filepath.Glob(filepath.Join(dir, "*.y*ml"))
	for _, f := range files {
		if base := filepath.Base(f); base != "kustomization.yaml" && !slices.Contains(resources, base) {
			t.Errorf("deploy/k8s/%s is not in kustomization.yaml's resources", base)
		}
	}

	byKind := map[string][]map[string]any{}
	names := map[string]string{} // kind/name → file
	for _, r := range resources {
		path := filepath.Join(dir, r)
		if _, err := os.Stat(path); err != nil {
			t.Errorf("kustomization.yaml lists %s: %v", r, err)
			continue
		}
		for i, doc := range readDocs(t, path) {
			at := fmt.Sprintf("deploy/k8s/%s#%d", r, i)
			kind, name := str(doc["kind"]), str(get(doc, "metadata", "name"))
			if str(doc["apiVersion"]) == "" || kind == "" || name == "" {
				t.Errorf("%s: apiVersion %q, kind %q, metadata.name %q: want all three", at, doc["apiVersion"], kind, name)
				continue
			}
			if prev, dup := names[kind+"/"+name]; dup {
				t.Errorf("%s: %s %s is also in %s", at, kind, name, prev)
			}
			names[kind+"/"+name] = at
			doc["_at"] = at
			byKind[kind] = append(byKind[kind], doc)
		}
	}

	workloads := append(append([]map[string]any{}, byKind["StatefulSet"]...), byKind["Deployment"]...)
	if len(workloads) != 1 {
		t.Fatalf("%d StatefulSets and Deployments; want one", len(workloads))
	}
	w := workloads[0]
	at := str(w["_at"])
	podSpec := mapOf(get(w, "spec", "template", "spec"))
	podLabels := mapOf(get(w, "spec", "template", "metadata", "labels"))
	if !labelsMatch(mapOf(get(w, "spec", "selector", "matchLabels")), podLabels) {
		t.Errorf("%s: spec.selector.matchLabels does not match the pod template's labels", at)
	}
	// Services named gridwatch* would put GRIDWATCH_*_PORT variables into
	// the environment, where gridwatch reads its options.
	if v, ok := podSpec["enableServiceLinks"].(bool); !ok || v {
		t.Errorf("%s: enableServiceLinks must be false: Services named gridwatch… would set GRIDWATCH_… variables", at)
	}

	configMaps := map[string]map[string]any{}
	for _, cm := range byKind["ConfigMap"] {
		configMaps[str(get(cm, "metadata", "name"))] = cm
	}
	var c *container
	for i, ct := range list(podSpec["containers"]) {
		cmd := append(strs(get(ct, "command")), strs(get(ct, "args"))...)
		if !strings.HasPrefix(str(get(ct, "image")), "gridwatch") && (len(cmd) == 0 || filepath.Base(cmd[0]) != "gridwatch") {
			continue
		}
		c = &container{spec: mapOf(ct), where: fmt.Sprintf("%s containers[%d]", at, i), env: map[string]any{}, fromMaps: map[string]string{}, portNames: map[string]int{}}
		if len(cmd) > 0 && filepath.Base(cmd[0]) == "gridwatch" {
			cmd = cmd[1:]
		}
		if len(cmd) == 0 || cmd[0] != "serve" {
			t.Errorf("%s: the command line %q does not run `gridwatch serve`", c.where, cmd)
		} else {
			cmd = cmd[1:]
		}
		c.args = cmd
		for _, e := range list(get(ct, "env")) {
			c.env[str(get(e, "name"))] = e
		}
		for _, ef := range list(get(ct, "envFrom")) {
			if name := str(get(ef, "configMapRef", "name")); name != "" {
				cm, ok := configMaps[name]
				if !ok {
					t.Errorf("%s: envFrom names ConfigMap %q, which is not in the kustomization", c.where, name)
				}
				for k, v := range mapOf(cm["data"]) {
					c.fromMaps[k] = str(v)
				}
			}
		}
		for _, p := range list(get(ct, "ports")) {
			n, _ := num(get(p, "containerPort"))
			c.portNames[str(get(p, "name"))] = n
		}
		break
	}
	if c == nil {
		t.Fatalf("%s: no gridwatch container (image gridwatch…, or command gridwatch)", at)
	}

	// Every option is one gridwatch knows.
	check.args(c.where+" args", c.args)
	for name, e := range c.env {
		helper := str(get(e, "valueFrom", "fieldRef", "fieldPath")) != "" && !strings.HasPrefix(name, "GRIDWATCH_")
		check.envName(c.where+" env", name, helper)
	}
	for _, cm := range byKind["ConfigMap"] {
		for k := range mapOf(cm["data"]) {
			check.envName(str(cm["_at"])+" data", k, false)
		}
	}
	check.report(t)

	// Secrets come from a Secret, never written here.
	for _, name := range secretEnv {
		e, ok := c.env[name]
		if _, inMap := c.fromMaps[name]; inMap {
			t.Errorf("%s: %s is in a ConfigMap; it belongs in a Secret", c.where, name)
		}
		if !ok {
			if name != "GRIDWATCH_ADMIN_TOKEN" {
				t.Errorf("%s: no %s in env (from a Secret)", c.where, name)
			}
			continue
		}
		if get(e, "value") != nil || str(get(e, "valueFrom", "secretKeyRef", "name")) == "" {
			t.Errorf("%s: env %s must come from valueFrom.secretKeyRef", c.where, name)
		}
	}

	// Node ID from the pod name, advertise URL from the pod IP.
	if v, ok := c.option("node-id"); !ok || !slices.Equal(c.fieldRefs(v), []string{"metadata.name"}) {
		t.Errorf("%s: --node-id is %q; want the pod name (fieldRef metadata.name)", c.where, v)
	}
	httpPort, rtspPort := 8080, 8554
	if v, ok := c.option("addr"); !ok {
		t.Errorf("%s: --addr not set: gridwatch would listen on 127.0.0.1 only", c.where)
	} else if p, err := portOf(v); err != nil {
		t.Errorf("%s: --addr %q: %v", c.where, v, err)
	} else {
		httpPort = p
	}
	if v, ok := c.option("rtsp-addr"); !ok {
		t.Errorf("%s: --rtsp-addr not set: the RTSP re-serve (and relays between nodes) would listen on 127.0.0.1 only", c.where)
	} else if p, err := portOf(v); err != nil {
		t.Errorf("%s: --rtsp-addr %q: %v", c.where, v, err)
	} else {
		rtspPort = p
	}
	if rtspPort != 8554 {
		t.Errorf("%s: the RTSP re-serve listens on %d; want 8554", c.where, rtspPort)
	}
	if v, ok := c.option("advertise-url"); !ok || !slices.Equal(c.fieldRefs(v), []string{"status.podIP"}) {
		t.Errorf("%s: --advertise-url is %q; want http(s)://$(POD_IP):%d with POD_IP from status.podIP", c.where, v, httpPort)
	} else if u, err := url.Parse(strings.NewReplacer("$(", "", ")", "").Replace(v)); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Port() != strconv.Itoa(httpPort) {
		t.Errorf("%s: --advertise-url %q is not http(s)://host:%d (the HTTP port)", c.where, v, httpPort)
	}
	if c.portNames["http"] != httpPort || c.portNames["rtsp"] != rtspPort {
		t.Errorf("%s: container ports %v; want http %d and rtsp %d (--addr, --rtsp-addr)", c.where, c.portNames, httpPort, rtspPort)
	}
	if dataDir, ok := c.option("data-dir"); !ok || !strings.HasPrefix(dataDir, "/") {
		t.Errorf("%s: --data-dir %q: want an absolute path on a volume", c.where, dataDir)
	} else {
		mounted := false
		for _, m := range list(get(c.spec, "volumeMounts")) {
			mounted = mounted || strings.TrimSuffix(str(get(m, "mountPath")), "/") == strings.TrimSuffix(dataDir, "/")
		}
		if !mounted {
			t.Errorf("%s: no volume mounted at --data-dir %s", c.where, dataDir)
		}
	}

	// Probes: ready on /readyz, alive on /healthz, both on the HTTP port.
	for probe, path := range map[string]string{"readinessProbe": "/readyz", "livenessProbe": "/healthz"} {
		p := get(c.spec, probe, "httpGet")
		if p == nil {
			t.Errorf("%s: no %s.httpGet", c.where, probe)
			continue
		}
		if str(get(p, "path")) != path || c.resolvePort(get(p, "port")) != httpPort {
			t.Errorf("%s: %s gets %v port %v; want %s on the HTTP port %d", c.where, probe, get(p, "path"), get(p, "port"), path, httpPort)
		}
	}
	if p := get(c.spec, "startupProbe", "httpGet"); p != nil && c.resolvePort(get(p, "port")) != httpPort {
		t.Errorf("%s: startupProbe is not on the HTTP port %d", c.where, httpPort)
	}

	// Stopping: a preStop hook, then enough grace for drain and shutdown.
	preStop := mapOf(get(c.spec, "lifecycle", "preStop"))
	if preStop == nil || (preStop["sleep"] == nil && preStop["exec"] == nil && preStop["httpGet"] == nil) {
		t.Errorf("%s: no lifecycle.preStop hook", c.where)
	}
	sleep, _ := num(get(preStop, "sleep", "seconds"))
	shutdown := defaultShutdown
	if v, ok := c.option("shutdown-timeout"); ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Errorf("%s: --shutdown-timeout %q: %v", c.where, v, err)
		}
		shutdown = d
	}
	grace, ok := num(podSpec["terminationGracePeriodSeconds"])
	need := time.Duration(sleep)*time.Second + shutdown + 2*time.Second // drain: well under 2 s
	if !ok || grace < 20 || time.Duration(grace)*time.Second < need {
		t.Errorf("%s: terminationGracePeriodSeconds %v; want at least 20 and at least preStop %ds + shutdown %v + drain 2s", at, podSpec["terminationGracePeriodSeconds"], sleep, shutdown)
	}

	// Services: one for HTTP, one for RTSP on 8554/TCP, the headless one
	// a StatefulSet names; all select the pods.
	httpSvc, rtspSvc := []string{}, []string{}
	services := map[string]map[string]any{}
	for _, s := range byKind["Service"] {
		name := str(get(s, "metadata", "name"))
		services[name] = s
		if !labelsMatch(mapOf(get(s, "spec", "selector")), podLabels) {
			t.Errorf("%s: Service %s does not select the gridwatch pods", str(s["_at"]), name)
		}
		if str(get(s, "spec", "clusterIP")) == "None" {
			continue
		}
		for _, p := range list(get(s, "spec", "ports")) {
			target := get(p, "targetPort")
			if target == nil {
				target = get(p, "port")
			}
			proto := str(get(p, "protocol"))
			if proto == "" {
				proto = "TCP"
			}
			port, _ := num(get(p, "port"))
			switch c.resolvePort(target) {
			case httpPort:
				httpSvc = append(httpSvc, name)
			case rtspPort:
				if port != 8554 || proto != "TCP" {
					t.Errorf("%s: Service %s exposes the RTSP re-serve as %d/%s; want 8554/TCP", str(s["_at"]), name, port, proto)
				}
				rtspSvc = append(rtspSvc, name)
			}
		}
	}
	if len(httpSvc) != 1 || len(rtspSvc) != 1 || httpSvc[0] == rtspSvc[0] {
		t.Errorf("Services exposing HTTP %v and RTSP %v; want one Service each", httpSvc, rtspSvc)
	}
	if str(w["kind"]) == "StatefulSet" {
		name := str(get(w, "spec", "serviceName"))
		if s, ok := services[name]; !ok || str(get(s, "spec", "clusterIP")) != "None" {
			t.Errorf("%s: spec.serviceName %q is not a headless Service (clusterIP: None) of the kustomization", at, name)
		}
	}

	pdbs := 0
	for _, p := range byKind["PodDisruptionBudget"] {
		if labelsMatch(mapOf(get(p, "spec", "selector", "matchLabels")), podLabels) {
			pdbs++
		}
	}
	if pdbs != 1 {
		t.Errorf("%d PodDisruptionBudgets select the gridwatch pods; want one", pdbs)
	}
}

// --- Docker Compose ----------------------------------------------------------

func TestCompose(t *testing.T) {
	check := newOptionCheck(t)
	path := filepath.Join(repoRoot(t), "deploy", "compose.yaml")
	doc := readDocs(t, path)[0]
	services := mapOf(doc["services"])
	if len(services) != 3 {
		t.Fatalf("deploy/compose.yaml: %d services; want three gridwatch nodes", len(services))
	}
	nodeIDs, advertised, volumes := map[string]string{}, map[string]string{}, map[string]string{}
	names := make([]string, 0, len(services))
	for n := range services {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		s := services[name]
		at := "deploy/compose.yaml services." + name
		cmd := words(get(s, "entrypoint"))
		cmd = append(cmd, words(get(s, "command"))...)
		if len(cmd) > 0 && filepath.Base(cmd[0]) == "gridwatch" {
			cmd = cmd[1:]
		}
		if len(cmd) == 0 || cmd[0] != "serve" {
			t.Errorf("%s: entrypoint and command %q do not run `gridwatch serve`", at, cmd)
		} else {
			cmd = cmd[1:]
		}
		check.args(at+".command", cmd)
		env := composeEnv(t, at, get(s, "environment"))
		for k := range env {
			check.envName(at+".environment", k, false)
		}
		option := func(flag string) (string, bool) {
			v, ok := env["GRIDWATCH_"+strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))]
			for i, a := range cmd {
				if flagName(a) == flag {
					if _, x, has := strings.Cut(a, "="); has {
						v, ok = x, true
					} else if i+1 < len(cmd) {
						v, ok = cmd[i+1], true
					}
				}
			}
			return v, ok
		}

		for _, k := range secretEnv {
			v, ok := env[k]
			if !ok && k != "GRIDWATCH_ADMIN_TOKEN" {
				t.Errorf("%s: no %s in environment", at, k)
			}
			if ok && !strings.HasPrefix(v, "${") {
				t.Errorf("%s: %s is written in the file; take it from the environment (${%s})", at, k, k)
			}
		}
		id, ok := option("node-id")
		if !ok || id == "" {
			t.Errorf("%s: no --node-id", at)
		} else if other, dup := nodeIDs[id]; dup {
			t.Errorf("%s: node id %q is also %s's", at, id, other)
		}
		nodeIDs[id] = name

		addr, _ := option("addr")
		httpPort, err := portOf(addr)
		if err != nil {
			t.Errorf("%s: --addr %q: %v (unset, gridwatch listens on 127.0.0.1 only)", at, addr, err)
		}
		if ra, _ := option("rtsp-addr"); !strings.HasSuffix(ra, ":8554") || strings.HasPrefix(ra, "127.") {
			t.Errorf("%s: --rtsp-addr %q; want :8554 on every interface (relays between nodes use it)", at, ra)
		}
		adv, _ := option("advertise-url")
		if u, err := url.Parse(adv); err != nil || (u.Scheme != "http" && u.Scheme != "https") || (u.Hostname() != name && u.Hostname() != str(get(s, "hostname"))) || u.Port() != strconv.Itoa(httpPort) {
			t.Errorf("%s: --advertise-url %q; want http://%s:%d (the service's name and HTTP port)", at, adv, name, httpPort)
		}
		if other, dup := advertised[adv]; dup {
			t.Errorf("%s: --advertise-url %q is also %s's", at, adv, other)
		}
		advertised[adv] = name

		test := strings.Join(words(get(s, "healthcheck", "test")), " ")
		if !strings.Contains(test, "/readyz") || !strings.Contains(test, ":"+strconv.Itoa(httpPort)) || get(s, "healthcheck", "disable") == true {
			t.Errorf("%s: healthcheck %q does not get /readyz on the HTTP port %d", at, test, httpPort)
		}
		if sig := str(get(s, "stop_signal")); sig != "SIGTERM" {
			t.Errorf("%s: stop_signal %q; want SIGTERM (gridwatch drains on it)", at, sig)
		}
		shutdown := defaultShutdown
		if v, ok := option("shutdown-timeout"); ok {
			if shutdown, err = time.ParseDuration(v); err != nil {
				t.Errorf("%s: --shutdown-timeout %q: %v", at, v, err)
			}
		}
		grace, err := time.ParseDuration(str(get(s, "stop_grace_period")))
		if err != nil || grace < 20*time.Second || grace < shutdown+2*time.Second {
			t.Errorf("%s: stop_grace_period %q; want at least 20s and the shutdown timeout %v + drain 2s", at, get(s, "stop_grace_period"), shutdown)
		}

		dataDir, _ := option("data-dir")
		found := false
		for _, v := range list(get(s, "volumes")) {
			src, dst := "", ""
			if m := mapOf(v); m != nil {
				src, dst = str(m["source"]), str(m["target"])
			} else {
				parts := strings.Split(str(v), ":")
				if len(parts) >= 2 {
					src, dst = parts[0], parts[1]
				}
			}
			if dataDir != "" && strings.TrimSuffix(dst, "/") == strings.TrimSuffix(dataDir, "/") {
				found = true
				if other, dup := volumes[src]; dup {
					t.Errorf("%s: data volume %q is also %s's", at, src, other)
				}
				volumes[src] = name
			}
		}
		if !found {
			t.Errorf("%s: no volume at --data-dir %q", at, dataDir)
		}
	}
	check.report(t)
}

// words is a compose command: a list, or a string split as a shell would
// split a plain one.
func words(v any) []string {
	if s, ok := v.(string); ok {
		return strings.Fields(s)
	}
	return strs(v)
}

// composeEnv is a service's environment, as a map or as KEY=VALUE lines.
func composeEnv(t *testing.T, at string, v any) map[string]string {
	env := map[string]string{}
	if m := mapOf(v); m != nil {
		for k, x := range m {
			env[k] = str(x)
		}
		return env
	}
	for _, line := range strs(v) {
		k, x, _ := strings.Cut(line, "=")
		env[k] = x
	}
	if v != nil && len(env) == 0 {
		t.Errorf("%s: environment is neither a map nor a list", at)
	}
	return env
}
