package deploy_test

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// manifests is one rendered kustomization, decoded strictly.
type manifests struct {
	deployments  []*appsv1.Deployment
	statefulSets []*appsv1.StatefulSet
	services     []*corev1.Service
	configMaps   []*corev1.ConfigMap
	secrets      []*corev1.Secret
	pdbs         []*policyv1.PodDisruptionBudget
	policies     []*networkingv1.NetworkPolicy
}

// workload is a Deployment's or StatefulSet's pod template, by name.
type workload struct {
	kind, name string
	replicas   int32
	pod        *corev1.PodTemplateSpec
}

func (m *manifests) workloads() []workload {
	var out []workload
	for _, d := range m.deployments {
		out = append(out, workload{"Deployment", d.Name, ptrOr(d.Spec.Replicas, 1), &d.Spec.Template})
	}
	for _, s := range m.statefulSets {
		out = append(out, workload{"StatefulSet", s.Name, ptrOr(s.Spec.Replicas, 1), &s.Spec.Template})
	}
	return out
}

func ptrOr(p *int32, def int32) int32 {
	if p == nil {
		return def
	}
	return *p
}

// render builds a kustomization under deploy/kubernetes as `kubectl
// kustomize --load-restrictor LoadRestrictionsNone` does (the Grafana
// provisioning files live in dashboards/), and decodes every document
// strictly into its k8s.io/api type: an unknown or misspelt field fails.
func render(t *testing.T, dir string) *manifests {
	t.Helper()
	opts := krusty.MakeDefaultOptions()
	opts.LoadRestrictions = types.LoadRestrictionsNone
	resources, err := krusty.MakeKustomizer(opts).Run(filesys.MakeFsOnDisk(), filepath.Join(repoRoot(t), "deploy/kubernetes", dir))
	if err != nil {
		t.Fatalf("kustomize %s: %v", dir, err)
	}
	m := &manifests{}
	for _, r := range resources.Resources() {
		doc, err := r.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		var obj any
		switch kind := r.GetKind(); kind {
		case "Deployment":
			obj = appendNew(&m.deployments)
		case "StatefulSet":
			obj = appendNew(&m.statefulSets)
		case "Service":
			obj = appendNew(&m.services)
		case "ConfigMap":
			obj = appendNew(&m.configMaps)
		case "Secret":
			obj = appendNew(&m.secrets)
		case "PodDisruptionBudget":
			obj = appendNew(&m.pdbs)
		case "NetworkPolicy":
			obj = appendNew(&m.policies)
		default:
			t.Fatalf("%s: kind %s %s has no check here", dir, kind, r.GetName())
		}
		if err := yaml.UnmarshalStrict(doc, obj); err != nil {
			t.Fatalf("%s: %s %s does not decode strictly: %v", dir, r.GetKind(), r.GetName(), err)
		}
	}
	return m
}

// appendNew appends a new zero T to *s and returns it.
func appendNew[T any](s *[]*T) *T {
	v := new(T)
	*s = append(*s, v)
	return v
}

var overlays = []string{"base", "overlays/example"}

func TestKubernetesRenders(t *testing.T) {
	for _, dir := range overlays {
		t.Run(dir, func(t *testing.T) {
			m := render(t, dir)
			names := map[string]bool{}
			for _, w := range m.workloads() {
				names[w.kind+"/"+w.name] = true
			}
			for _, want := range []string{"Deployment/apiguard-proxy", "StatefulSet/apiguard-pipeline", "StatefulSet/clickhouse", "Deployment/grafana"} {
				if !names[want] {
					t.Errorf("no %s", want)
				}
			}
		})
	}
}

// apiguardContainer reports whether c runs the apiguard image.
func apiguardContainer(c corev1.Container) bool {
	name, _, _ := strings.Cut(c.Image, ":")
	return strings.HasSuffix(name, "apiguard/apiguard")
}

func TestKubernetesContainers(t *testing.T) {
	for _, dir := range overlays {
		t.Run(dir, func(t *testing.T) {
			m := render(t, dir)
			for _, w := range m.workloads() {
				spec := w.pod.Spec
				for _, c := range slices.Concat(spec.InitContainers, spec.Containers) {
					where := w.kind + "/" + w.name + " container " + c.Name
					for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
						req, hasReq := c.Resources.Requests[res]
						lim, hasLim := c.Resources.Limits[res]
						if !hasReq || !hasLim {
							t.Errorf("%s: %s request or limit missing", where, res)
						} else if req.Cmp(lim) > 0 {
							t.Errorf("%s: %s request %s above its limit %s", where, res, req.String(), lim.String())
						}
					}
					if apiguardContainer(c) {
						sc := c.SecurityContext
						if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
							sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
							t.Errorf("%s: want a read-only root and no privilege escalation", where)
						}
						if ps := spec.SecurityContext; ps == nil || ps.RunAsNonRoot == nil || !*ps.RunAsNonRoot {
							t.Errorf("%s: the pod does not require a non-root user", where)
						}
					}
				}
				for _, c := range spec.Containers {
					where := w.kind + "/" + w.name + " container " + c.Name
					if c.LivenessProbe == nil || c.ReadinessProbe == nil {
						t.Errorf("%s: want liveness and readiness probes", where)
					}
					for _, p := range []*corev1.Probe{c.StartupProbe, c.LivenessProbe, c.ReadinessProbe} {
						if p != nil {
							checkProbe(t, where, c, p)
						}
					}
					if apiguardContainer(c) && slices.Contains(c.Args, "proxy") && !strings.HasSuffix(probeURL(c.ReadinessProbe), "/readyz") {
						t.Errorf("%s: readiness %s, want /readyz (ready once the enforcement state is loaded)", where, probeURL(c.ReadinessProbe))
					}
					if apiguardContainer(c) && slices.Contains(c.Args, "pipeline") && !strings.HasSuffix(probeURL(c.ReadinessProbe), "/readyz") {
						t.Errorf("%s: readiness %s, want /readyz (ready once every partition consumes)", where, probeURL(c.ReadinessProbe))
					}
					if apiguardContainer(c) && (slices.Contains(c.Args, "proxy") || slices.Contains(c.Args, "pipeline")) {
						if got := envValue(c, "APIGUARD_NATS_URL"); got != natsURL {
							t.Errorf("%s: APIGUARD_NATS_URL = %q, want %s (the Helm release nats)", where, got, natsURL)
						}
					}
				}
			}
		})
	}
}

// probeURL is an exec probe's URL (apiguard-probe URL), an HTTP probe's
// path, or "".
func probeURL(p *corev1.Probe) string {
	switch {
	case p == nil:
		return ""
	case p.HTTPGet != nil:
		return p.HTTPGet.Path
	case p.Exec == nil || len(p.Exec.Command) != 2:
		return ""
	}
	return p.Exec.Command[1]
}

func envValue(c corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

// checkProbe checks that p asks a path the container serves, on a port
// it listens on: exec probes run the image's probe against the admin or
// metrics listener its flags open; HTTP probes name a declared port.
func checkProbe(t *testing.T, where string, c corev1.Container, p *corev1.Probe) {
	t.Helper()
	switch {
	case p.Exec != nil:
		if len(p.Exec.Command) != 2 || p.Exec.Command[0] != probeBinary {
			t.Errorf("%s: exec probe %v, want [%s URL]", where, p.Exec.Command, probeBinary)
			return
		}
		checkProbeURL(t, where, p.Exec.Command[1], c.Args)
	case p.HTTPGet != nil:
		port, ok := containerPort(c, p.HTTPGet.Port)
		if !ok {
			t.Errorf("%s: HTTP probe on port %s, which the container does not declare", where, p.HTTPGet.Port.String())
			return
		}
		if !apiguardContainer(c) {
			return
		}
		var listen string
		switch {
		case p.HTTPGet.Path == metricsPath, adminPaths[p.HTTPGet.Path] && probedOnMetrics(c.Args):
			listen = flagValue(c.Args, "--metrics-listen")
		case p.HTTPGet.Path == demoHealthPath:
			listen = flagValue(c.Args, "--listen")
		default:
			// The admin listener stays on loopback: the kubelet cannot reach it.
			t.Errorf("%s: HTTP probe of %s: only /metrics, /healthz and /readyz on the metrics listener (or the demo's /health) are served off loopback", where, p.HTTPGet.Path)
			return
		}
		if !strings.HasSuffix(listen, ":"+strconv.Itoa(int(port))) {
			t.Errorf("%s: probe of %s on port %d, but that listener is %q", where, p.HTTPGet.Path, port, listen)
		}
	default:
		t.Errorf("%s: probe neither exec nor HTTP", where)
	}
}

// containerPort resolves a named or numbered port of c.
func containerPort(c corev1.Container, p intstr.IntOrString) (int32, bool) {
	for _, cp := range c.Ports {
		if (p.Type == intstr.String && cp.Name == p.StrVal) || (p.Type == intstr.Int && cp.ContainerPort == p.IntVal) {
			return cp.ContainerPort, true
		}
	}
	return 0, false
}

// podPort resolves a port of any container of pod.
func podPort(pod *corev1.PodTemplateSpec, p intstr.IntOrString) bool {
	for _, c := range pod.Spec.Containers {
		if _, ok := containerPort(c, p); ok {
			return true
		}
	}
	return false
}

// selected returns the workloads whose pods sel selects.
func selected(m *manifests, sel *metav1.LabelSelector) []workload {
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil || s.Empty() {
		return nil
	}
	var out []workload
	for _, w := range m.workloads() {
		if s.Matches(labels.Set(w.pod.Labels)) {
			out = append(out, w)
		}
	}
	return out
}

func TestKubernetesSelectors(t *testing.T) {
	for _, dir := range overlays {
		t.Run(dir, func(t *testing.T) {
			m := render(t, dir)
			for _, w := range m.workloads() {
				var sel *metav1.LabelSelector
				for _, d := range m.deployments {
					if d.Name == w.name {
						sel = d.Spec.Selector
					}
				}
				for _, s := range m.statefulSets {
					if s.Name == w.name {
						sel = s.Spec.Selector
						if !hasService(m, s.Spec.ServiceName) {
							t.Errorf("StatefulSet/%s: serviceName %s is not a Service", s.Name, s.Spec.ServiceName)
						}
					}
				}
				if got := selected(m, sel); len(got) != 1 || got[0].name != w.name {
					t.Errorf("%s/%s: its selector picks %d workloads' pods, want its own only", w.kind, w.name, len(got))
				}
			}
			for _, svc := range m.services {
				ws := selected(m, &metav1.LabelSelector{MatchLabels: svc.Spec.Selector})
				if len(ws) != 1 {
					t.Errorf("Service/%s selects %d workloads, want 1", svc.Name, len(ws))
					continue
				}
				for _, p := range svc.Spec.Ports {
					target := p.TargetPort
					if target.Type == intstr.Int && target.IntVal == 0 {
						target = intstr.FromInt32(p.Port)
					}
					if !podPort(ws[0].pod, target) {
						t.Errorf("Service/%s port %s targets %s, which %s/%s does not declare", svc.Name, p.Name, target.String(), ws[0].kind, ws[0].name)
					}
				}
			}
			if len(m.pdbs) == 0 {
				t.Error("no PodDisruptionBudget")
			}
			for _, pdb := range m.pdbs {
				ws := selected(m, pdb.Spec.Selector)
				if len(ws) != 1 {
					t.Errorf("PodDisruptionBudget/%s selects %d workloads, want 1", pdb.Name, len(ws))
					continue
				}
				if ws[0].replicas < 2 {
					t.Errorf("PodDisruptionBudget/%s guards %s with %d replica: it would block every drain", pdb.Name, ws[0].name, ws[0].replicas)
				}
				if pdb.Spec.MinAvailable != nil && pdb.Spec.MinAvailable.IntValue() >= int(ws[0].replicas) {
					t.Errorf("PodDisruptionBudget/%s: minAvailable %s leaves no pod of %s to evict", pdb.Name, pdb.Spec.MinAvailable.String(), ws[0].name)
				}
			}
			for _, name := range []string{"apiguard-proxy", "apiguard-pipeline"} {
				if !slices.ContainsFunc(m.pdbs, func(p *policyv1.PodDisruptionBudget) bool {
					ws := selected(m, p.Spec.Selector)
					return len(ws) == 1 && ws[0].name == name
				}) {
					t.Errorf("no PodDisruptionBudget for %s", name)
				}
			}
		})
	}
}

func hasService(m *manifests, name string) bool {
	return slices.ContainsFunc(m.services, func(s *corev1.Service) bool { return s.Name == name })
}

func TestKubernetesNetworkPolicies(t *testing.T) {
	for _, dir := range overlays {
		t.Run(dir, func(t *testing.T) {
			m := render(t, dir)
			denyAll := false
			covered := map[string]bool{}
			for _, np := range m.policies {
				ws := selected(m, &np.Spec.PodSelector)
				if len(np.Spec.Ingress) == 0 {
					// The default deny: it must cover every workload.
					denyAll = len(ws) == len(m.workloads())
					continue
				}
				if np.Name == "nats" {
					continue // the Helm chart's pods, not rendered here
				}
				if len(ws) == 0 {
					t.Errorf("NetworkPolicy/%s selects no pod", np.Name)
				}
				for _, w := range ws {
					covered[w.name] = true
					for _, rule := range np.Spec.Ingress {
						for _, p := range rule.Ports {
							if p.Port != nil && !podPort(w.pod, *p.Port) {
								t.Errorf("NetworkPolicy/%s allows port %s, which %s does not declare", np.Name, p.Port.String(), w.name)
							}
						}
					}
				}
			}
			if !denyAll {
				t.Error("no NetworkPolicy denies ingress to every apiguard pod by default")
			}
			for _, w := range m.workloads() {
				if !covered[w.name] {
					t.Errorf("%s/%s: no NetworkPolicy allows anything to it", w.kind, w.name)
				}
			}
		})
	}
}

// configMap returns the ConfigMap a volume of w names, by volume name.
func configMap(t *testing.T, m *manifests, w workload, volume string) *corev1.ConfigMap {
	t.Helper()
	for _, v := range w.pod.Spec.Volumes {
		if v.Name == volume && v.ConfigMap != nil {
			for _, cm := range m.configMaps {
				if cm.Name == v.ConfigMap.Name {
					return cm
				}
			}
			t.Fatalf("%s: volume %s names ConfigMap %s, which is not rendered", w.name, volume, v.ConfigMap.Name)
		}
	}
	t.Fatalf("%s: no ConfigMap volume %s", w.name, volume)
	return nil
}

func findWorkload(t *testing.T, m *manifests, name string) workload {
	t.Helper()
	for _, w := range m.workloads() {
		if w.name == name {
			return w
		}
	}
	t.Fatalf("no workload %s", name)
	return workload{}
}

// apiguardNATS is the nats section of an apiguard config.
type apiguardNATS struct {
	NATS struct {
		Partitions int   `json:"partitions"`
		Replicas   int   `json:"replicas"`
		Owned      []int `json:"owned_partitions"`
	} `json:"nats"`
}

func TestKubernetesPipelinePartitions(t *testing.T) {
	m := render(t, "overlays/example")
	pl := findWorkload(t, m, "apiguard-pipeline")
	if pl.kind != "StatefulSet" {
		t.Fatalf("the pipeline is a %s, want a StatefulSet", pl.kind)
	}
	c := pl.pod.Spec.Containers[0]
	if got := flagValue(c.Args, "--config"); got != "/etc/apiguard/pipeline-$(POD_INDEX).yaml" {
		t.Errorf("pipeline: --config %q, want the file of its pod index", got)
	}
	for _, ctr := range slices.Concat(pl.pod.Spec.InitContainers, pl.pod.Spec.Containers) {
		idx := slices.IndexFunc(ctr.Env, func(e corev1.EnvVar) bool { return e.Name == "POD_INDEX" })
		if idx < 0 || ctr.Env[idx].ValueFrom == nil || ctr.Env[idx].ValueFrom.FieldRef == nil ||
			ctr.Env[idx].ValueFrom.FieldRef.FieldPath != "metadata.labels['apps.kubernetes.io/pod-index']" {
			t.Errorf("pipeline container %s: $POD_INDEX is not the pod-index label", ctr.Name)
		}
	}
	var proxyCfg apiguardNATS
	if err := yaml.Unmarshal([]byte(configMap(t, m, findWorkload(t, m, "apiguard-proxy"), "config").Data["apiguard.yaml"]), &proxyCfg); err != nil {
		t.Fatal(err)
	}
	cm := configMap(t, m, pl, "config")
	if len(cm.Data) != int(pl.replicas) {
		t.Errorf("%d pipeline files for %d replicas", len(cm.Data), pl.replicas)
	}
	owner := map[int]int{}
	for i := range int(pl.replicas) {
		file := fmt.Sprintf("pipeline-%d.yaml", i)
		data, ok := cm.Data[file]
		if !ok {
			t.Errorf("replica %d has no %s", i, file)
			continue
		}
		var cfg apiguardNATS
		// Only the nats section is read here; the whole file is checked
		// by cmd/apiguard's TestDeployConfigs.
		if err := yaml.Unmarshal([]byte(data), &cfg); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if cfg.NATS.Partitions != proxyCfg.NATS.Partitions {
			t.Errorf("%s: %d partitions, the proxy's %d", file, cfg.NATS.Partitions, proxyCfg.NATS.Partitions)
		}
		if len(cfg.NATS.Owned) == 0 {
			t.Errorf("%s owns no partition (empty means all: two replicas would share them)", file)
		}
		for _, p := range cfg.NATS.Owned {
			if prev, dup := owner[p]; dup {
				t.Errorf("partition %d owned by replicas %d and %d", p, prev, i)
			}
			owner[p] = i
		}
	}
	for p := range proxyCfg.NATS.Partitions {
		if _, ok := owner[p]; !ok {
			t.Errorf("partition %d is owned by no replica: its events would never be judged", p)
		}
	}
	if len(owner) != proxyCfg.NATS.Partitions {
		t.Errorf("replicas own %v, want 0..%d", slices.Sorted(maps.Keys(owner)), proxyCfg.NATS.Partitions-1)
	}

	// The stream replicas fit the NATS cluster of the Helm values.
	var values struct {
		Config struct {
			Cluster struct {
				Enabled  bool `json:"enabled"`
				Replicas int  `json:"replicas"`
			} `json:"cluster"`
			JetStream struct {
				Enabled bool `json:"enabled"`
			} `json:"jetstream"`
		} `json:"config"`
	}
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy/kubernetes/nats-values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &values); err != nil {
		t.Fatalf("nats-values.yaml: %v", err)
	}
	if !values.Config.JetStream.Enabled {
		t.Error("nats-values.yaml: JetStream is off")
	}
	servers := 1
	if values.Config.Cluster.Enabled {
		servers = values.Config.Cluster.Replicas
	}
	if proxyCfg.NATS.Replicas > servers {
		t.Errorf("nats.replicas %d, but the NATS of nats-values.yaml has %d servers", proxyCfg.NATS.Replicas, servers)
	}
}

func TestKubernetesGrafana(t *testing.T) {
	m := render(t, "overlays/example")
	g := findWorkload(t, m, "grafana")
	c := g.pod.Spec.Containers[0]
	env := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		env[e.Name] = e
	}
	for _, v := range grafanaPlaceholders(t) {
		if e, ok := env[v]; !ok || (e.Value == "" && e.ValueFrom == nil) {
			t.Errorf("grafana: $%s, which the data sources use, is not set", v)
		}
	}
	if env["APIGUARD_NATS_URL"].Value != natsURL {
		t.Errorf("grafana: APIGUARD_NATS_URL = %q", env["APIGUARD_NATS_URL"].Value)
	}
	// Every Secret a pod reads is rendered by the overlay.
	for _, w := range m.workloads() {
		for _, ctr := range slices.Concat(w.pod.Spec.InitContainers, w.pod.Spec.Containers) {
			for _, e := range ctr.Env {
				if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
					continue
				}
				ref := e.ValueFrom.SecretKeyRef
				if !slices.ContainsFunc(m.secrets, func(s *corev1.Secret) bool {
					_, ok := s.StringData[ref.Key]
					_, okb := s.Data[ref.Key]
					return s.Name == ref.Name && (ok || okb)
				}) {
					t.Errorf("%s/%s: $%s reads Secret %s key %s, which the overlay does not render", w.name, ctr.Name, e.Name, ref.Name, ref.Key)
				}
			}
		}
	}
	// The provisioning ConfigMaps hold dashboards/provisioning's files, mounted where Grafana reads them.
	mounts := map[string]string{}
	for _, vm := range c.VolumeMounts {
		mounts[vm.MountPath] = vm.Name
	}
	for dir, src := range map[string]string{
		"/etc/grafana/provisioning/datasources": "dashboards/provisioning/datasources/apiguard.yaml",
		"/etc/grafana/provisioning/dashboards":  "dashboards/provisioning/dashboards/apiguard.yaml",
		"/etc/grafana/provisioning/plugins":     "dashboards/provisioning/plugins/apiguard.yaml",
	} {
		vol, ok := mounts[dir]
		if !ok {
			t.Errorf("grafana: nothing mounted at %s", dir)
			continue
		}
		want, err := os.ReadFile(filepath.Join(repoRoot(t), src))
		if err != nil {
			t.Fatal(err)
		}
		if got := configMap(t, m, g, vol).Data["apiguard.yaml"]; got != string(want) {
			t.Errorf("grafana: %s/apiguard.yaml differs from %s", dir, src)
		}
	}
}
