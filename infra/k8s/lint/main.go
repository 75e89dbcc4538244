// Lints the Kubernetes manifests in infra/k8s: every document decodes strictly into the
// Kubernetes API type of its kind (an unknown or misspelt field, a wrong type, is an error),
// and the manifests agree with each other and with the house rules (each Deployment has a
// PodDisruptionBudget over its pods, autoscalers point at Deployments that exist, services at
// ports that exist, no Secret values shipped, pods run unprivileged with resources set).
//
//	cd infra/k8s/lint && go run . ..
package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Resources  []string `json:"resources"`
	Labels     []struct {
		Pairs map[string]string `json:"pairs"`
	} `json:"labels"`
}

type set struct {
	deployments map[string]*appsv1.Deployment
	hpas        []*autoscalingv2.HorizontalPodAutoscaler
	pdbs        []*policyv1.PodDisruptionBudget
	services    []*corev1.Service
	jobs        []*batchv1.Job
	configMaps  map[string]*corev1.ConfigMap
	accounts    map[string]bool
}

var problems []string

func fail(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

func main() {
	dir := "."
	if len(os.Args) > 1 {
		dir = os.Args[1]
	}
	raw, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var k kustomization
	if err := yaml.UnmarshalStrict(raw, &k); err != nil {
		fail("kustomization.yaml: %v", err)
	}
	s := &set{deployments: map[string]*appsv1.Deployment{}, configMaps: map[string]*corev1.ConfigMap{}, accounts: map[string]bool{}}
	listed := map[string]bool{}
	for _, r := range k.Resources {
		listed[r] = true
		load(s, filepath.Join(dir, r), r)
	}
	// a manifest left out of the kustomization would never be applied
	files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	for _, f := range files {
		b := filepath.Base(f)
		if b != "kustomization.yaml" && !listed[b] {
			fail("%s is not listed in kustomization.yaml", b)
		}
	}
	check(s)
	if len(problems) > 0 {
		sort.Strings(problems)
		for _, p := range problems {
			fmt.Fprintln(os.Stderr, "k8s lint:", p)
		}
		os.Exit(1)
	}
	fmt.Printf("k8s lint: %d manifests, %d Deployments, %d HPAs, %d PDBs, %d Services, %d Jobs: ok\n",
		len(k.Resources), len(s.deployments), len(s.hpas), len(s.pdbs), len(s.services), len(s.jobs))
}

var docSep = regexp.MustCompile(`(?m)^---\s*$`)

func load(s *set, path, name string) {
	raw, err := os.ReadFile(path)
	if err != nil {
		fail("%s: %v", name, err)
		return
	}
	for i, doc := range docSep.Split(string(raw), -1) {
		if strings.TrimSpace(stripComments(doc)) == "" {
			continue
		}
		where := fmt.Sprintf("%s#%d", name, i+1)
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
			fail("%s: %v", where, err)
			continue
		}
		strict := func(into any) bool {
			if err := yaml.UnmarshalStrict([]byte(doc), into); err != nil {
				fail("%s (%s): %v", where, tm.Kind, err)
				return false
			}
			return true
		}
		switch tm.APIVersion + "/" + tm.Kind {
		case "apps/v1/Deployment":
			var d appsv1.Deployment
			if strict(&d) {
				if s.deployments[d.Name] != nil {
					fail("%s: Deployment %s defined twice", where, d.Name)
				}
				s.deployments[d.Name] = &d
			}
		case "autoscaling/v2/HorizontalPodAutoscaler":
			var h autoscalingv2.HorizontalPodAutoscaler
			if strict(&h) {
				s.hpas = append(s.hpas, &h)
			}
		case "policy/v1/PodDisruptionBudget":
			var p policyv1.PodDisruptionBudget
			if strict(&p) {
				s.pdbs = append(s.pdbs, &p)
			}
		case "v1/Service":
			var v corev1.Service
			if strict(&v) {
				s.services = append(s.services, &v)
			}
		case "batch/v1/Job":
			var j batchv1.Job
			if strict(&j) {
				s.jobs = append(s.jobs, &j)
			}
		case "v1/ConfigMap":
			var c corev1.ConfigMap
			if strict(&c) {
				s.configMaps[c.Name] = &c
			}
		case "v1/ServiceAccount":
			var a corev1.ServiceAccount
			if strict(&a) {
				s.accounts[a.Name] = true
			}
		case "v1/Secret":
			fail("%s: a Secret is shipped; secrets are created by the operator, never committed", where)
		default:
			fail("%s: unexpected kind %s %s", where, tm.APIVersion, tm.Kind)
		}
	}
}

func stripComments(doc string) string {
	var b bytes.Buffer
	for _, l := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

var secretish = regexp.MustCompile(`(?i)(KEY|SECRET|PASSWORD|TOKEN)`)

func check(s *set) {
	if len(s.deployments) == 0 {
		fail("no Deployments")
	}
	for name, c := range s.configMaps {
		for k, v := range c.Data {
			if secretish.MatchString(k) && v != "" {
				fail("ConfigMap %s holds %s: put it in the Secret", name, k)
			}
		}
	}
	for name, d := range s.deployments {
		sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
		if err != nil || sel.Empty() {
			fail("Deployment %s: no usable selector", name)
			continue
		}
		if !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
			fail("Deployment %s: selector does not match its pod labels", name)
		}
		checkPod(s, "Deployment "+name, &d.Spec.Template.Spec)
		covered := 0
		for _, p := range s.pdbs {
			ps, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
			if err == nil && !ps.Empty() && ps.Matches(labels.Set(d.Spec.Template.Labels)) {
				covered++
			}
		}
		if covered != 1 {
			fail("Deployment %s: %d PodDisruptionBudgets select its pods, want exactly 1", name, covered)
		}
	}
	for _, p := range s.pdbs {
		if p.Spec.MinAvailable == nil && p.Spec.MaxUnavailable == nil {
			fail("PodDisruptionBudget %s: neither minAvailable nor maxUnavailable", p.Name)
		}
		if p.Spec.MaxUnavailable != nil && p.Spec.MaxUnavailable.Type == intstr.Int && p.Spec.MaxUnavailable.IntVal < 1 {
			fail("PodDisruptionBudget %s: maxUnavailable below 1 blocks every drain", p.Name)
		}
	}
	for _, h := range s.hpas {
		ref := h.Spec.ScaleTargetRef
		d := s.deployments[ref.Name]
		if ref.Kind != "Deployment" || ref.APIVersion != "apps/v1" || d == nil {
			fail("HPA %s: targets %s %s %s, not a Deployment here", h.Name, ref.APIVersion, ref.Kind, ref.Name)
			continue
		}
		if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas < 1 || *h.Spec.MinReplicas > h.Spec.MaxReplicas {
			fail("HPA %s: minReplicas must be 1..maxReplicas", h.Name)
		}
		if d.Spec.Replicas != nil && h.Spec.MinReplicas != nil && *d.Spec.Replicas != *h.Spec.MinReplicas {
			fail("HPA %s: Deployment replicas %d differ from minReplicas %d", h.Name, *d.Spec.Replicas, *h.Spec.MinReplicas)
		}
		cpu := false
		for _, m := range h.Spec.Metrics {
			if m.Type == autoscalingv2.ResourceMetricSourceType && m.Resource != nil && m.Resource.Name == corev1.ResourceCPU {
				cpu = true
			}
			if m.Type == autoscalingv2.ExternalMetricSourceType && (m.External == nil || m.External.Metric.Selector == nil) {
				fail("HPA %s: an External metric without a selector would sum every consumer group", h.Name)
			}
		}
		if !cpu {
			fail("HPA %s: no CPU metric", h.Name)
		}
		// CPU utilisation is relative to requests: without one the HPA cannot work
		for _, c := range d.Spec.Template.Spec.Containers {
			if _, ok := c.Resources.Requests[corev1.ResourceCPU]; !ok {
				fail("HPA %s: container %s has no CPU request", h.Name, c.Name)
			}
		}
	}
	for _, v := range s.services {
		var target *appsv1.Deployment
		for _, d := range s.deployments {
			if len(v.Spec.Selector) > 0 && labels.SelectorFromSet(v.Spec.Selector).Matches(labels.Set(d.Spec.Template.Labels)) {
				target = d
			}
		}
		if target == nil {
			fail("Service %s: selects no Deployment's pods", v.Name)
			continue
		}
		for _, p := range v.Spec.Ports {
			if !hasPort(&target.Spec.Template.Spec, p.TargetPort) {
				fail("Service %s: targetPort %s is no container port of %s", v.Name, p.TargetPort.String(), target.Name)
			}
		}
	}
	for _, j := range s.jobs {
		checkPod(s, "Job "+j.Name, &j.Spec.Template.Spec)
	}
}

func hasPort(pod *corev1.PodSpec, p intstr.IntOrString) bool {
	for _, c := range pod.Containers {
		for _, cp := range c.Ports {
			if (p.Type == intstr.String && cp.Name == p.StrVal) || (p.Type == intstr.Int && cp.ContainerPort == p.IntVal) {
				return true
			}
		}
	}
	return false
}

func checkPod(s *set, what string, pod *corev1.PodSpec) {
	if pod.ServiceAccountName != "" && !s.accounts[pod.ServiceAccountName] {
		fail("%s: ServiceAccount %s is not defined", what, pod.ServiceAccountName)
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		fail("%s: mounts a service account token it does not need", what)
	}
	if pod.SecurityContext == nil || pod.SecurityContext.RunAsNonRoot == nil || !*pod.SecurityContext.RunAsNonRoot {
		fail("%s: pods must set runAsNonRoot", what)
	}
	if len(pod.Containers) == 0 {
		fail("%s: no containers", what)
	}
	volumes := map[string]bool{}
	for _, v := range pod.Volumes {
		volumes[v.Name] = true
	}
	for _, c := range pod.Containers {
		w := fmt.Sprintf("%s container %s", what, c.Name)
		if c.Image == "" {
			fail("%s: no image", w)
		}
		if _, ok := c.Resources.Requests[corev1.ResourceMemory]; !ok {
			fail("%s: no memory request", w)
		}
		if _, ok := c.Resources.Limits[corev1.ResourceMemory]; !ok {
			fail("%s: no memory limit", w)
		}
		sc := c.SecurityContext
		if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
			sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
			sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" {
			fail("%s: must drop ALL capabilities, forbid privilege escalation and use a read-only root", w)
		}
		configured := map[string]bool{}
		for _, e := range c.EnvFrom {
			if e.ConfigMapRef != nil {
				if s.configMaps[e.ConfigMapRef.Name] == nil {
					fail("%s: ConfigMap %s is not defined", w, e.ConfigMapRef.Name)
				}
				configured["configmap"] = true
			}
			if e.SecretRef != nil {
				configured["secret"] = true
			}
		}
		if !configured["configmap"] || !configured["secret"] {
			fail("%s: must read cdp-config and cdp-secrets (envFrom)", w)
		}
		for _, m := range c.VolumeMounts {
			if !volumes[m.Name] {
				fail("%s: mounts undefined volume %s", w, m.Name)
			}
		}
		for _, p := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe} {
			if p == nil {
				continue
			}
			var port intstr.IntOrString
			switch {
			case p.HTTPGet != nil:
				port = p.HTTPGet.Port
			case p.TCPSocket != nil:
				port = p.TCPSocket.Port
			default:
				continue
			}
			if !hasPort(&corev1.PodSpec{Containers: []corev1.Container{c}}, port) {
				fail("%s: probe port %s is not a container port", w, port.String())
			}
		}
		if strings.HasPrefix(what, "Deployment") && c.LivenessProbe == nil {
			fail("%s: no liveness probe", w)
		}
	}
}
