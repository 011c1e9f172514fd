//go:build tiergate_vapbench

// The apiserver's own ValidatingAdmissionPolicy evaluator (compilePolicy and
// Validate of k8s.io/apiserver) on tiergate's generated policies: what one
// policy costs one request, with no HTTP, etcd or other admission around
// it. scripts/bench-policies.sh copies this file into a copy of the
// apiserver module (the package's unexported compilePolicy is what the
// apiserver runs) and runs it; not part of any test run.
package validating

import (
	"context"
	"os"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8slabels "k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apiserver/pkg/admission"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"k8s.io/apiserver/pkg/authentication/user"
	"sigs.k8s.io/yaml"
)

// TIERGATE_VAP=FILE[,FILE...] (one sub-benchmark each, so -count
// alternates them), TIERGATE_POLICY=NAME, TIERGATE_OBJECT=FILE (a
// Deployment, YAML or JSON), TIERGATE_NS_LABELS=k=v,k=v (the namespace's).
// The object is typed, as the apiserver holds it, and wrapped anew for
// every request (its conversion to CEL is part of the cost).
func BenchmarkTiergateVAP(b *testing.B) { perFile(b, benchOne) }

// perFile runs bench once per TIERGATE_VAP file, as a sub-benchmark named
// after it.
func perFile(b *testing.B, bench func(*testing.B, string)) {
	for _, f := range strings.Split(os.Getenv("TIERGATE_VAP"), ",") {
		b.Run(strings.TrimSuffix(f[strings.LastIndex(f, "/")+1:], ".yaml"), func(b *testing.B) { bench(b, f) })
	}
}

// nsLabels: the bench namespace's labels, TIERGATE_NS_LABELS=k=v,k=v and
// its name.
func nsLabels() map[string]string {
	labels := map[string]string{"kubernetes.io/metadata.name": "bench"}
	for _, kv := range strings.Split(os.Getenv("TIERGATE_NS_LABELS"), ",") {
		if k, val, ok := strings.Cut(kv, "="); ok {
			labels[k] = val
		}
	}
	return labels
}

func benchOne(b *testing.B, file string) {
	raw, err := os.ReadFile(file)
	if err != nil {
		b.Fatal(err)
	}
	var policy *admissionregistrationv1.ValidatingAdmissionPolicy
	for _, doc := range strings.Split(string(raw), "\n---\n") {
		var p admissionregistrationv1.ValidatingAdmissionPolicy
		if err := yaml.Unmarshal([]byte(doc), &p); err != nil {
			continue
		}
		if p.Kind == "ValidatingAdmissionPolicy" && p.Name == os.Getenv("TIERGATE_POLICY") {
			policy = &p
		}
	}
	if policy == nil {
		b.Fatal("policy not found")
	}
	v := compilePolicy(policy)
	objRaw, err := os.ReadFile(os.Getenv("TIERGATE_OBJECT"))
	if err != nil {
		b.Fatal(err)
	}
	obj := &appsv1.Deployment{}
	if err := yaml.Unmarshal(objRaw, obj); err != nil {
		b.Fatal(err)
	}
	obj.SetNamespace("bench")
	labels := nsLabels()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "bench", Labels: labels}}
	gvk := schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}
	gvr := schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
	attr := admission.NewAttributesRecord(obj, nil, gvk, "bench", obj.GetName(), gvr, "", admission.Create, &metav1.CreateOptions{}, true, &user.DefaultInfo{Name: "admin", Groups: []string{"system:masters"}})
	va := &admission.VersionedAttributes{Attributes: attr, VersionedKind: gvk, VersionedObject: admission.NewLazyObject(obj)}
	ctx := context.Background()
	r := v.Validate(ctx, gvr, va, nil, ns, celconfig.RuntimeCELCostBudget, nil)
	for _, d := range r.Decisions {
		if d.Evaluation == EvalError {
			b.Fatalf("the policy does not evaluate: %s", d.Message)
		}
		if d.Action != "admit" && os.Getenv("TIERGATE_SHOW") != "" {
			b.Logf("decision %v %v: %s", d.Action, d.Evaluation, d.Message)
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		va := &admission.VersionedAttributes{Attributes: attr, VersionedKind: gvk, VersionedObject: admission.NewLazyObject(obj)}
		v.Validate(ctx, gvr, va, nil, ns, celconfig.RuntimeCELCostBudget, nil)
	}
}

// BenchmarkTiergateBindingSelectors: what the apiserver does per request,
// for every binding of every policy (validating and mutating) whose
// resource rules match the request's kind, before any CEL runs: it parses
// the binding's namespace selector (metav1.LabelSelectorAsSelector, which
// it does not cache for policies, as it does for webhooks) and matches it
// against the namespace's labels. One sub-benchmark per TIERGATE_VAP file,
// in the same process as BenchmarkTiergateVAP, so the two are a ratio.
func BenchmarkTiergateBindingSelectors(b *testing.B) { perFile(b, benchSelectors) }

// The parts of a policy or binding (validating or mutating) that decide
// whether the apiserver matches a binding's selector for a request.
type policyDoc struct {
	Kind     string            `json:"kind"`
	Metadata metav1.ObjectMeta `json:"metadata"`
	Spec     struct {
		PolicyName       string `json:"policyName"`
		MatchConstraints struct {
			ResourceRules []struct {
				APIGroups []string `json:"apiGroups"`
				Resources []string `json:"resources"`
			} `json:"resourceRules"`
		} `json:"matchConstraints"`
		MatchResources struct {
			NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector"`
		} `json:"matchResources"`
	} `json:"spec"`
}

func benchSelectors(b *testing.B, file string) {
	raw, err := os.ReadFile(file)
	if err != nil {
		b.Fatal(err)
	}
	var docs []policyDoc
	for _, text := range strings.Split(string(raw), "\n---\n") {
		var d policyDoc
		if err := yaml.Unmarshal([]byte(text), &d); err == nil && d.Kind != "" {
			docs = append(docs, d)
		}
	}
	// The policies whose rules match a Deployment (apps, deployments).
	matches := map[string]bool{}
	for _, d := range docs {
		if d.Kind != "ValidatingAdmissionPolicy" && d.Kind != "MutatingAdmissionPolicy" {
			continue
		}
		for _, r := range d.Spec.MatchConstraints.ResourceRules {
			group := false
			for _, g := range r.APIGroups {
				group = group || g == "apps" || g == "*"
			}
			for _, res := range r.Resources {
				if group && (res == "deployments" || res == "*") {
					matches[d.Kind+"/"+d.Metadata.Name] = true
				}
			}
		}
	}
	var selectors []*metav1.LabelSelector
	for _, d := range docs {
		policyKind := strings.TrimSuffix(d.Kind, "Binding")
		if policyKind == d.Kind || !matches[policyKind+"/"+d.Spec.PolicyName] {
			continue
		}
		sel := d.Spec.MatchResources.NamespaceSelector
		if sel == nil {
			sel = &metav1.LabelSelector{}
		}
		selectors = append(selectors, sel)
	}
	if len(selectors) == 0 {
		b.Fatal("no binding of a policy that matches Deployments")
	}
	labels := nsLabels()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, s := range selectors {
			sel, err := metav1.LabelSelectorAsSelector(s)
			if err != nil {
				b.Fatal(err)
			}
			sel.Matches(k8slabels.Set(labels))
		}
	}
	b.ReportMetric(float64(len(selectors)), "bindings")
}
