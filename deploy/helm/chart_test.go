// Package helmchart tests the Helm chart in deploy/helm/shoal without a
// Kubernetes cluster: it runs helm's own linter on it (the rules of `helm
// lint --strict`), renders it with helm's template engine for several sets
// of values, decodes every object strictly into its Kubernetes API type
// (an unknown or misspelt field is an error, as it would be for the API
// server), and checks what the deployment depends on: the kinds, the
// probes, replicas against --bootstrap-expect, the join addresses, the
// ports, the security context, the Secret wiring.
//
// It is its own Go module so that helm's and Kubernetes' libraries never
// enter shoal's go.mod.
package helmchart

import (
	"encoding/base64"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

const chartDir = "shoal"

// valueSets are the values the chart is rendered and linted with.
var valueSets = []struct {
	name      string
	namespace string
	release   string
	values    map[string]any
}{
	{"defaults", "default", "shoal", nil},
	{"five replicas, existing secret, metrics", "prod", "edge", map[string]any{
		"replicas": 5,
		"auth":     map[string]any{"existingSecret": "shoal-credentials"},
		"image":    map[string]any{"repository": "registry.example/shoal", "tag": "v1.2.3"},
		"metrics":  map[string]any{"serviceMonitor": map[string]any{"enabled": true}},
		"agent":    map[string]any{"modules": []any{"log", "locks"}, "extraArgs": []any{"--snapshot-threshold", "16384"}, "raftVoters": 3},
		"tls":      map[string]any{"secretName": "shoal-tls", "clientCASecretName": "shoal-client-ca"},
	}},
	{"no persistence, no auth, one replica", "dev", "try", map[string]any{
		"replicas":            1,
		"persistence":         map[string]any{"enabled": false},
		"auth":                map[string]any{"enabled": false},
		"podDisruptionBudget": map[string]any{"enabled": false},
		"fullnameOverride":    "a-rather-long-name-for-a-release-of-shoal-in-a-namespace",
	}},
	{"clients as a Deployment", "default", "shoal", map[string]any{
		"clients": map[string]any{"enabled": true, "replicas": 4},
	}},
	{"clients as a DaemonSet, servers only in the Service, TLS, existing secret", "prod", "edge", map[string]any{
		"auth":    map[string]any{"existingSecret": "shoal-credentials"},
		"tls":     map[string]any{"secretName": "shoal-tls"},
		"metrics": map[string]any{"serviceMonitor": map[string]any{"enabled": true}},
		"clients": map[string]any{
			"enabled": true, "kind": "DaemonSet", "inService": false, "hostPort": 7480,
			"extraArgs":   []any{"--kv-gossip-interval", "500ms"},
			"tolerations": []any{map[string]any{"operator": "Exists"}},
		},
	}},
}

func loadChart(t *testing.T) *chart.Chart {
	t.Helper()
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatalf("load the chart: %v", err)
	}
	return ch
}

// TestChart_Lint runs helm's linter, as `helm lint --strict` does, with
// each value set: an error or a warning fails; information is logged.
func TestChart_Lint(t *testing.T) {
	for _, vs := range valueSets {
		t.Run(vs.name, func(t *testing.T) {
			vals := vs.values
			if vals == nil {
				vals = map[string]any{}
			}
			res := lint.AllWithKubeVersionAndSchemaValidation(chartDir, vals, vs.namespace, nil, false)
			for _, m := range res.Messages {
				if m.Severity > support.InfoSev {
					t.Errorf("helm lint: %s", m)
				} else {
					t.Logf("helm lint: %s", m)
				}
			}
		})
	}
}

// rendered is the chart rendered with one value set: the objects by kind
// and name, and NOTES.txt.
type rendered struct {
	objects map[string]map[string]string // kind -> name -> YAML
	notes   string
	values  chartutil.Values
}

func render(t *testing.T, ch *chart.Chart, namespace, release string, vals map[string]any) rendered {
	t.Helper()
	if vals == nil {
		vals = map[string]any{}
	}
	opts := chartutil.ReleaseOptions{Name: release, Namespace: namespace, Revision: 1, IsInstall: true}
	values, err := chartutil.ToRenderValues(ch, vals, opts, chartutil.DefaultCapabilities)
	if err != nil {
		t.Fatalf("values: %v", err)
	}
	if err := chartutil.ValidateAgainstSchema(ch, values["Values"].(chartutil.Values)); err != nil {
		t.Fatalf("values against values.schema.json: %v", err)
	}
	files, err := engine.Render(ch, values)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	r := rendered{objects: map[string]map[string]string{}, values: values["Values"].(chartutil.Values)}
	for name, content := range files {
		if strings.HasSuffix(name, "NOTES.txt") {
			r.notes = content
			continue
		}
		for _, doc := range strings.Split(content, "\n---") {
			if strings.TrimSpace(stripComments(doc)) == "" {
				continue
			}
			var meta struct {
				Kind     string `json:"kind"`
				Metadata struct {
					Name      string `json:"name"`
					Namespace string `json:"namespace"`
				} `json:"metadata"`
			}
			if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
				t.Fatalf("%s: not YAML: %v\n%s", name, err, doc)
			}
			if meta.Kind == "" || meta.Metadata.Name == "" {
				t.Fatalf("%s: an object without kind or name:\n%s", name, doc)
			}
			if meta.Metadata.Namespace != namespace {
				t.Errorf("%s %s: namespace %q, want %q", meta.Kind, meta.Metadata.Name, meta.Metadata.Namespace, namespace)
			}
			if len(meta.Metadata.Name) > 63 {
				t.Errorf("%s %s: the name is longer than 63 characters", meta.Kind, meta.Metadata.Name)
			}
			if r.objects[meta.Kind] == nil {
				r.objects[meta.Kind] = map[string]string{}
			}
			if _, dup := r.objects[meta.Kind][meta.Metadata.Name]; dup {
				t.Fatalf("two %s objects named %s", meta.Kind, meta.Metadata.Name)
			}
			r.objects[meta.Kind][meta.Metadata.Name] = doc
		}
	}
	return r
}

func stripComments(doc string) string {
	var lines []string
	for _, l := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "\n")
}

// one decodes the only object of kind strictly into out and returns its
// name.
func (r rendered) one(t *testing.T, kind string, out any) string {
	t.Helper()
	if len(r.objects[kind]) != 1 {
		t.Fatalf("%d objects of kind %s, want 1", len(r.objects[kind]), kind)
	}
	for name, doc := range r.objects[kind] {
		if err := yaml.UnmarshalStrict([]byte(doc), out); err != nil {
			t.Fatalf("%s %s does not decode strictly: %v", kind, name, err)
		}
		return name
	}
	return ""
}

func TestChart_Render(t *testing.T) {
	ch := loadChart(t)
	for _, vs := range valueSets {
		t.Run(vs.name, func(t *testing.T) {
			r := render(t, ch, vs.namespace, vs.release, vs.values)
			checkRendered(t, r, vs.namespace)
		})
	}
}

func checkRendered(t *testing.T, r rendered, namespace string) {
	v := r.values
	replicas := toInt(t, v["replicas"])
	auth := v["auth"].(map[string]any)
	authOn := auth["enabled"].(bool)
	existing := auth["existingSecret"].(string)
	persistence := v["persistence"].(map[string]any)["enabled"].(bool)
	pdbOn := v["podDisruptionBudget"].(map[string]any)["enabled"].(bool)
	smOn := v["metrics"].(map[string]any)["serviceMonitor"].(map[string]any)["enabled"].(bool)
	clients := v["clients"].(map[string]any)
	clientsOn := clients["enabled"].(bool)

	// The kinds, and nothing else: no client workload unless enabled.
	want := []string{"Service", "StatefulSet"}
	if pdbOn {
		want = append(want, "PodDisruptionBudget")
	}
	if existing == "" { // the cluster secret lives in it, token or not
		want = append(want, "Secret")
	}
	if smOn {
		want = append(want, "ServiceMonitor")
	}
	if clientsOn {
		want = append(want, clients["kind"].(string))
	}
	var kinds []string
	for k := range r.objects {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	slices.Sort(want)
	if !slices.Equal(kinds, want) {
		t.Fatalf("kinds %v, want %v", kinds, want)
	}

	var sts appsv1.StatefulSet
	stsName := r.one(t, "StatefulSet", &sts)
	spec := sts.Spec
	if spec.Replicas == nil || int(*spec.Replicas) != replicas {
		t.Errorf("replicas %v, want %d", spec.Replicas, replicas)
	}
	if spec.PodManagementPolicy != appsv1.ParallelPodManagement {
		t.Errorf("podManagementPolicy %q, want Parallel", spec.PodManagementPolicy)
	}
	podLabels := spec.Template.Labels
	if !selects(spec.Selector.MatchLabels, podLabels) {
		t.Errorf("the StatefulSet's selector %v does not select its pods %v", spec.Selector.MatchLabels, podLabels)
	}
	pod := spec.Template.Spec

	// Every node joins the stable DNS names of all replicas; the
	// credentials come from the chart's Secret or the existing one.
	var joins []string
	for i := range replicas {
		joins = append(joins, fmt.Sprintf("%s-%d.%s.%s.svc.cluster.local:7482", stsName, i, spec.ServiceName, namespace))
	}
	secretName := existing
	if secretName == "" {
		secretName = stsName
	}
	server := checkAgent(t, v, "server", pod, strings.Join(joins, ","), secretName)
	c := server.c
	args := server.args

	// The servers' own flags: bootstrap-expect is the replica count.
	if got := args["--bootstrap-expect"]; got != fmt.Sprint(replicas) {
		t.Errorf("--bootstrap-expect=%s, want %d (the replicas)", got, replicas)
	}
	// The stable DNS name, not the pod IP, which changes when pods are
	// recreated (issue 9).
	if want := fmt.Sprintf("$(POD_NAME).%s.%s.svc.cluster.local", spec.ServiceName, namespace); args["--advertise"] != want {
		t.Errorf("--advertise=%s, want %s", args["--advertise"], want)
	}
	if _, ok := args["--role"]; ok {
		t.Errorf("servers run with --role=%s, want the default (server)", args["--role"])
	}
	if server.ports["http"].HostPort != 0 {
		t.Errorf("servers publish the API on a hostPort")
	}
	if p := server.ports["replication"]; p.ContainerPort != 7483 || p.Protocol != "TCP" {
		t.Errorf("container port replication: %+v, want 7483/TCP", p)
	}
	if persistence {
		if len(spec.VolumeClaimTemplates) != 1 || spec.VolumeClaimTemplates[0].Name != "data" {
			t.Errorf("volumeClaimTemplates %+v, want one named data", spec.VolumeClaimTemplates)
		}
	} else if len(spec.VolumeClaimTemplates) != 0 || len(pod.Volumes) < 1 || pod.Volumes[0].EmptyDir == nil {
		t.Errorf("without persistence: want an emptyDir data volume and no claim templates, got %+v %+v", pod.Volumes, spec.VolumeClaimTemplates)
	}
	if pod.TerminationGracePeriodSeconds == nil || *pod.TerminationGracePeriodSeconds < 35 {
		t.Errorf("terminationGracePeriodSeconds %v: the agent needs up to 30 s to stop cleanly", pod.TerminationGracePeriodSeconds)
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() {
		t.Errorf("resources %+v: want CPU and memory requests", c.Resources)
	}
	// The default anti-affinity spreads the servers, not the clients.
	terms := pod.Affinity.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution
	if len(terms) != 1 || !matches(t, terms[0].PodAffinityTerm.LabelSelector, podLabels) || matches(t, terms[0].PodAffinityTerm.LabelSelector, clientPodLabels(spec.Selector.MatchLabels)) {
		t.Errorf("the servers' anti-affinity %+v: want it to select server pods only", terms)
	}

	if existing == "" {
		var s corev1.Secret
		if name := r.one(t, "Secret", &s); name != secretName {
			t.Errorf("Secret %s, but the pods read %s", name, secretName)
		}
		keys := []string{"cluster-secret"}
		if authOn {
			keys = append(keys, "token")
		}
		for _, k := range keys {
			if len(s.Data[k]) < 16 {
				t.Errorf("Secret key %s holds %d bytes, want a generated secret", k, len(s.Data[k]))
			}
		}
		if _, err := base64.StdEncoding.DecodeString(string(s.Data["cluster-secret"])); err != nil {
			t.Errorf("the generated cluster secret is not base64: %v", err)
		}
	}

	// Services: a headless one for peer discovery that publishes pods
	// before they are ready, and the client one.
	var headless, client *corev1.Service
	for name, doc := range r.objects["Service"] {
		var s corev1.Service
		if err := yaml.UnmarshalStrict([]byte(doc), &s); err != nil {
			t.Fatalf("Service %s: %v", name, err)
		}
		if !selects(s.Spec.Selector, podLabels) {
			t.Errorf("Service %s selects %v, not the pods %v", name, s.Spec.Selector, podLabels)
		}
		if s.Spec.ClusterIP == corev1.ClusterIPNone {
			headless = &s
		} else {
			client = &s
		}
	}
	if headless == nil || client == nil || len(r.objects["Service"]) != 2 {
		t.Fatalf("want one headless and one client Service, got %v", r.objects["Service"])
	}
	if headless.Name != spec.ServiceName {
		t.Errorf("the StatefulSet's serviceName %s is not the headless Service %s", spec.ServiceName, headless.Name)
	}
	if !headless.Spec.PublishNotReadyAddresses {
		t.Errorf("the headless Service must publish pods before they are ready: they become ready only once they found each other")
	}
	// Server pods of an earlier chart version, without the component
	// label, must stay in it: their DNS names are their Raft addresses.
	if !selects(headless.Spec.Selector, spec.Selector.MatchLabels) {
		t.Errorf("the headless Service selects %v: server pods labelled %v (before an upgrade) would lose their DNS names", headless.Spec.Selector, spec.Selector.MatchLabels)
	}
	var hp []string
	for _, p := range headless.Spec.Ports {
		hp = append(hp, fmt.Sprintf("%s:%d/%s", p.Name, p.Port, p.Protocol))
	}
	slices.Sort(hp)
	if want := []string{"gossip-tcp:7482/TCP", "gossip-udp:7482/UDP", "http:7480/TCP", "raft:7481/TCP", "replication:7483/TCP"}; !slices.Equal(hp, want) {
		t.Errorf("headless Service ports %v, want %v", hp, want)
	}
	if len(client.Spec.Ports) != 1 || client.Spec.Ports[0].Port != 7480 || client.Spec.Ports[0].TargetPort != intstr.FromString("http") {
		t.Errorf("client Service ports %+v, want only the HTTP API", client.Spec.Ports)
	}

	if pdbOn {
		var pdb policyv1.PodDisruptionBudget
		r.one(t, "PodDisruptionBudget", &pdb)
		if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntValue() != 1 {
			t.Errorf("PodDisruptionBudget maxUnavailable %v, want 1", pdb.Spec.MaxUnavailable)
		}
		// The servers, also those of an earlier chart version (no
		// component label); never the clients.
		if !matches(t, pdb.Spec.Selector, podLabels) || !matches(t, pdb.Spec.Selector, spec.Selector.MatchLabels) {
			t.Errorf("the PodDisruptionBudget does not select the server pods")
		}
		if matches(t, pdb.Spec.Selector, clientPodLabels(spec.Selector.MatchLabels)) {
			t.Errorf("the PodDisruptionBudget selects client pods")
		}
	}

	if smOn {
		var sm struct {
			APIVersion string `json:"apiVersion"`
			Spec       struct {
				Selector struct {
					MatchLabels map[string]string `json:"matchLabels"`
				} `json:"selector"`
				Endpoints []struct {
					Port          string         `json:"port"`
					Path          string         `json:"path"`
					Authorization map[string]any `json:"authorization"`
				} `json:"endpoints"`
			} `json:"spec"`
		}
		for _, doc := range r.objects["ServiceMonitor"] {
			if err := yaml.Unmarshal([]byte(doc), &sm); err != nil {
				t.Fatal(err)
			}
		}
		if sm.APIVersion != "monitoring.coreos.com/v1" || len(sm.Spec.Endpoints) != 1 ||
			sm.Spec.Endpoints[0].Port != "http" || sm.Spec.Endpoints[0].Path != "/metrics" {
			t.Errorf("ServiceMonitor %+v: want one endpoint, port http, path /metrics", sm)
		}
		if authOn && sm.Spec.Endpoints[0].Authorization == nil {
			t.Errorf("ServiceMonitor: /metrics needs the token, but no authorization is set")
		}
		if !selects(sm.Spec.Selector.MatchLabels, headless.Labels) || selects(sm.Spec.Selector.MatchLabels, client.Labels) {
			t.Errorf("the ServiceMonitor must select the headless Service only (each node once)")
		}
	}

	if !strings.Contains(r.notes, stsName) {
		t.Errorf("NOTES.txt does not name the StatefulSet %s:\n%s", stsName, r.notes)
	}

	if clientsOn {
		clientLabels := checkClients(t, r, strings.Join(joins, ","), secretName)
		if !selects(headless.Spec.Selector, clientLabels) {
			t.Errorf("the headless Service (which the ServiceMonitor scrapes) does not select the clients %v", clientLabels)
		}
		if inService := clients["inService"].(bool); selects(client.Spec.Selector, clientLabels) != inService {
			t.Errorf("clients.inService is %v, but the client Service selects %v and the clients are %v", inService, client.Spec.Selector, clientLabels)
		}
	}
}

// agentPod is the agent container of a pod template, with its flags,
// environment variables and ports by name.
type agentPod struct {
	c     corev1.Container
	args  map[string]string
	env   map[string]corev1.EnvVar
	ports map[string]corev1.ContainerPort
}

// checkAgent checks what the pods of servers and clients (what) share:
// one container running the agent with the pod's name, the listeners, the
// servers to join, the API, cluster and gossip ports, the probes, the
// security context, the data volume, TLS, and the credentials from
// secretName.
func checkAgent(t *testing.T, v chartutil.Values, what string, pod corev1.PodSpec, join, secretName string) agentPod {
	t.Helper()
	if len(pod.Containers) != 1 {
		t.Fatalf("%s: %d containers, want 1", what, len(pod.Containers))
	}
	a := agentPod{c: pod.Containers[0], args: map[string]string{}, env: map[string]corev1.EnvVar{}, ports: map[string]corev1.ContainerPort{}}
	c := a.c
	if c.Args[0] != "agent" {
		t.Errorf("%s: args %v: want the agent command first", what, c.Args)
	}
	for _, arg := range c.Args[1:] {
		k, val, _ := strings.Cut(arg, "=")
		a.args[k] = val
	}
	for flag, val := range map[string]string{
		"--node-name": "$(POD_NAME)", "--data-dir": "/data", "--join": join,
		"--http-addr": "0.0.0.0:7480", "--raft-addr": "0.0.0.0:7481", "--gossip-addr": "0.0.0.0:7482",
	} {
		if a.args[flag] != val {
			t.Errorf("%s: %s=%s, want %s", what, flag, a.args[flag], val)
		}
	}
	for _, e := range c.Env {
		a.env[e.Name] = e
	}
	if e := a.env["POD_NAME"]; e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != "metadata.name" {
		t.Errorf("%s: POD_NAME is not the pod's name: %+v", what, e)
	}

	// Ports and probes.
	for _, p := range c.Ports {
		a.ports[p.Name] = p
	}
	for name, want := range map[string]corev1.ContainerPort{
		"http": {ContainerPort: 7480, Protocol: "TCP"}, "raft": {ContainerPort: 7481, Protocol: "TCP"},
		"gossip-tcp": {ContainerPort: 7482, Protocol: "TCP"}, "gossip-udp": {ContainerPort: 7482, Protocol: "UDP"},
	} {
		if p := a.ports[name]; p.ContainerPort != want.ContainerPort || p.Protocol != want.Protocol {
			t.Errorf("%s: container port %s: %+v, want %d/%s", what, name, p, want.ContainerPort, want.Protocol)
		}
	}
	checkProbe(t, what+" readiness", c.ReadinessProbe, "/v1/health/ready")
	checkProbe(t, what+" liveness", c.LivenessProbe, "/v1/health/live")

	// Non-root, read-only root file system, a writable data volume.
	psc, sc := pod.SecurityContext, c.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 || psc.FSGroup == nil {
		t.Errorf("%s: pod security context %+v: want runAsNonRoot, a non-root runAsUser and an fsGroup", what, psc)
	}
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("%s: container security context %+v: want a read-only root and no privilege escalation", what, sc)
	}
	if len(c.VolumeMounts) < 1 || c.VolumeMounts[0].MountPath != "/data" || c.VolumeMounts[0].Name != "data" {
		t.Errorf("%s: volume mounts %+v, want data on /data", what, c.VolumeMounts)
	}
	// With TLS: the Secret on /tls, the flags, HTTPS probes and SHOAL_ADDR.
	if tlsSecret := v["tls"].(map[string]any)["secretName"].(string); tlsSecret != "" {
		mounted := false
		for _, m := range c.VolumeMounts {
			mounted = mounted || (m.Name == "tls" && m.MountPath == "/tls" && m.ReadOnly)
		}
		secretVol := false
		for _, vol := range pod.Volumes {
			secretVol = secretVol || (vol.Name == "tls" && vol.Secret != nil && vol.Secret.SecretName == tlsSecret)
		}
		if !mounted || !secretVol || a.args["--tls-cert"] != "/tls/tls.crt" || a.args["--tls-key"] != "/tls/tls.key" ||
			c.ReadinessProbe.HTTPGet.Scheme != "HTTPS" || c.LivenessProbe.HTTPGet.Scheme != "HTTPS" || !strings.HasPrefix(a.env["SHOAL_ADDR"].Value, "https://") {
			t.Errorf("%s: tls.secretName %q: want the Secret mounted on /tls, --tls-cert/--tls-key, HTTPS probes and an https SHOAL_ADDR; got mounts %+v args %v", what, tlsSecret, c.VolumeMounts, c.Args)
		}
	}

	// The token (unless auth is disabled) and the cluster secret (always:
	// without it any pod that reaches the cluster or gossip port could
	// join, issue 10), from the one Secret.
	wantEnv := []string{"SHOAL_CLUSTER_SECRET"}
	if v["auth"].(map[string]any)["enabled"].(bool) {
		wantEnv = append(wantEnv, "SHOAL_TOKEN")
	} else if _, ok := a.env["SHOAL_TOKEN"]; ok {
		t.Errorf("%s: auth disabled, yet SHOAL_TOKEN is set", what)
	}
	for _, name := range wantEnv {
		e := a.env[name]
		if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil || e.ValueFrom.SecretKeyRef.Optional != nil && *e.ValueFrom.SecretKeyRef.Optional {
			t.Fatalf("%s: %s is not taken from a Secret: %+v", what, name, e)
		}
		if e.ValueFrom.SecretKeyRef.Name != secretName {
			t.Errorf("%s: %s from Secret %s, want %s", what, name, e.ValueFrom.SecretKeyRef.Name, secretName)
		}
	}
	return a
}

// checkClients checks the client workload (clients.kind): client agents
// that join the servers and never bootstrap, on an emptyDir, advertising
// the pod IP. It returns the clients' pod labels.
func checkClients(t *testing.T, r rendered, join, secretName string) map[string]string {
	t.Helper()
	clients := r.values["clients"].(map[string]any)
	kind := clients["kind"].(string)
	var (
		name     string
		selector *metav1.LabelSelector
		tmpl     corev1.PodTemplateSpec
	)
	switch kind {
	case "Deployment":
		var d appsv1.Deployment
		name = r.one(t, kind, &d)
		selector, tmpl = d.Spec.Selector, d.Spec.Template
		if want := toInt(t, clients["replicas"]); d.Spec.Replicas == nil || int(*d.Spec.Replicas) != want {
			t.Errorf("client Deployment replicas %v, want %d", d.Spec.Replicas, want)
		}
	case "DaemonSet":
		var d appsv1.DaemonSet
		name = r.one(t, kind, &d)
		selector, tmpl = d.Spec.Selector, d.Spec.Template
	default:
		t.Fatalf("clients.kind %q", kind)
	}
	if !matches(t, selector, tmpl.Labels) || tmpl.Labels["app.kubernetes.io/component"] != "client" {
		t.Errorf("the %s's selector %+v does not select its pods %v, or they are not labelled clients", kind, selector, tmpl.Labels)
	}
	pod := tmpl.Spec
	a := checkAgent(t, r.values, "client", pod, join, secretName)
	if got := a.args["--role"]; got != "client" {
		t.Errorf("client: --role=%q, want client", got)
	}
	for _, flag := range []string{"--bootstrap-expect", "--dead-node-reap", "--raft-voters"} {
		if _, ok := a.args[flag]; ok {
			t.Errorf("client: %s is set: a client holds no Raft state", flag)
		}
	}
	if a.args["--advertise"] != "$(POD_IP)" {
		t.Errorf("client: --advertise=%s, want $(POD_IP): a client's pod has no DNS name", a.args["--advertise"])
	}
	if e := a.env["POD_IP"]; e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != "status.podIP" {
		t.Errorf("client: POD_IP is not the pod's IP: %+v", e)
	}
	if len(a.ports) != 4 {
		t.Errorf("client: ports %v, want the API, cluster and gossip ports only", a.ports)
	}
	if got, want := a.ports["http"].HostPort, toInt(t, clients["hostPort"]); int(got) != want {
		t.Errorf("client: the API's hostPort is %d, want %d (clients.hostPort)", got, want)
	}
	if len(pod.Volumes) < 1 || pod.Volumes[0].Name != "data" || pod.Volumes[0].EmptyDir == nil {
		t.Errorf("client: volumes %+v, want an emptyDir named data first", pod.Volumes)
	}
	if pod.TerminationGracePeriodSeconds == nil || *pod.TerminationGracePeriodSeconds < 35 {
		t.Errorf("client: terminationGracePeriodSeconds %v: the agent needs up to 30 s to stop cleanly", pod.TerminationGracePeriodSeconds)
	}
	if lim := a.c.Resources.Limits.Memory(); a.c.Resources.Requests.Memory().IsZero() || lim.IsZero() {
		t.Errorf("client: resources %+v: want a memory request and limit", a.c.Resources)
	}
	if !strings.Contains(r.notes, name) {
		t.Errorf("NOTES.txt does not name the client %s %s:\n%s", kind, name, r.notes)
	}
	return tmpl.Labels
}

func checkProbe(t *testing.T, what string, p *corev1.Probe, path string) {
	t.Helper()
	if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != path || p.HTTPGet.Port != intstr.FromString("http") {
		t.Errorf("%s probe %+v, want GET %s on port http", what, p, path)
	}
}

// selects reports whether selector is non-empty and matches labels.
func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// matches reports whether selector, with its expressions, is non-empty
// and matches podLabels.
func matches(t *testing.T, selector *metav1.LabelSelector, podLabels map[string]string) bool {
	t.Helper()
	if selector == nil || len(selector.MatchLabels)+len(selector.MatchExpressions) == 0 {
		return false
	}
	sel, err := metav1.LabelSelectorAsSelector(selector)
	if err != nil {
		t.Fatalf("label selector %+v: %v", selector, err)
	}
	return sel.Matches(labels.Set(podLabels))
}

// clientPodLabels are the labels the chart gives client pods, from the
// release's selector labels.
func clientPodLabels(selectorLabels map[string]string) map[string]string {
	l := maps.Clone(selectorLabels)
	l["app.kubernetes.io/component"] = "client"
	return l
}

func toInt(t *testing.T, v any) int {
	t.Helper()
	switch n := v.(type) {
	case int:
		return n
	case int64:
		return int(n)
	case float64:
		return int(n)
	}
	t.Fatalf("not a number: %#v", v)
	return 0
}

// TestChart_Failures checks that values the chart refuses are refused.
func TestChart_Failures(t *testing.T) {
	ch := loadChart(t)
	for name, vals := range map[string]map[string]any{
		"zero replicas":   {"replicas": 0},
		"bad log level":   {"agent": map[string]any{"logLevel": "loud"}},
		"short grace":     {"terminationGracePeriodSeconds": 5},
		"replicas string": {"replicas": "three"},
		"clients kind":    {"clients": map[string]any{"enabled": true, "kind": "StatefulSet"}},
		"clients memory":  {"clients": map[string]any{"goMemLimit": "lots"}},
	} {
		t.Run(name, func(t *testing.T) {
			opts := chartutil.ReleaseOptions{Name: "shoal", Namespace: "default", IsInstall: true}
			values, err := chartutil.ToRenderValues(ch, vals, opts, chartutil.DefaultCapabilities)
			if err == nil {
				err = chartutil.ValidateAgainstSchema(ch, values["Values"].(chartutil.Values))
			}
			if err == nil {
				_, err = engine.Render(ch, values)
			}
			if err == nil {
				t.Errorf("values %v were accepted", vals)
			}
		})
	}
}
