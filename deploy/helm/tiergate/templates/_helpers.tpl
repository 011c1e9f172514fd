{{- define "tiergate.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "tiergate.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Standard and business labels of every object. */}}
{{- define "tiergate.labels" -}}
{{ include "tiergate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: tiergate
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- range $k, $v := .Values.businessLabels }}
{{ $k }}: {{ $v | quote }}
{{- end }}
{{- end -}}

{{- define "tiergate.tlsSecret" -}}
{{ include "tiergate.fullname" . }}-tls
{{- end -}}

{{- define "tiergate.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}:{{ .Values.image.tag }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag }}
{{- end -}}
{{- end -}}

{{/* The self-signed pair used without cert-manager when no PEM files are given:
     made once, then read back from the existing Secret on upgrades. */}}
{{- define "tiergate.generatedTLS" -}}
{{- $secret := lookup "v1" "Secret" .Release.Namespace (include "tiergate.tlsSecret" .) -}}
{{- if and $secret (index $secret "data") -}}
ca: {{ index $secret.data "ca.crt" }}
crt: {{ index $secret.data "tls.crt" }}
key: {{ index $secret.data "tls.key" }}
{{- else -}}
{{- $svc := include "tiergate.fullname" . -}}
{{- $ns := .Release.Namespace -}}
{{- $ca := genCA "tiergate CA" 3650 -}}
{{- $names := list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.cluster.local" $svc $ns) -}}
{{- $cert := genSignedCert (printf "%s.%s.svc" $svc $ns) nil $names 365 $ca -}}
ca: {{ $ca.Cert | b64enc }}
crt: {{ $cert.Cert | b64enc }}
key: {{ $cert.Key | b64enc }}
{{- end -}}
{{- end -}}

{{- define "tiergate.namespaceSelector" -}}
namespaceSelector:
  matchExpressions:
    - key: kubernetes.io/metadata.name
      operator: NotIn
      values:
        {{- range .Values.webhook.excludeNamespaces }}
        - {{ . }}
        {{- end }}
        - {{ .Release.Namespace }}
{{- end -}}

{{- define "tiergate.matchConditions" }}
matchConditions:
{{- if .Values.webhook.breakGlassGroup }}
  - name: break-glass
    expression: {{ printf "!has(request.userInfo.groups) || !('%s' in request.userInfo.groups)" .Values.webhook.breakGlassGroup | quote }}
{{- end }}
  - name: not-unchanged-update
    expression: "!(request.operation == 'UPDATE' && (!has(request.subResource) || request.subResource == '') && oldObject != null && ((request.kind.group == '' && request.kind.kind in ['Pod', 'ReplicationController']) || (request.kind.group == 'apps' && request.kind.kind in ['Deployment', 'ReplicaSet', 'StatefulSet', 'DaemonSet']) || (request.kind.group == 'batch' && request.kind.kind in ['Job', 'CronJob'])) && (has(object.spec) ? (has(oldObject.spec) && object.spec == oldObject.spec) : !has(oldObject.spec)) && (request.kind.kind == 'Pod' || ((has(object.metadata.labels) ? (has(oldObject.metadata.labels) && object.metadata.labels == oldObject.metadata.labels) : !has(oldObject.metadata.labels)) && (has(object.metadata.annotations) ? (has(oldObject.metadata.annotations) && object.metadata.annotations == oldObject.metadata.annotations) : !has(oldObject.metadata.annotations)) && (has(object.metadata.ownerReferences) ? (has(oldObject.metadata.ownerReferences) && object.metadata.ownerReferences == oldObject.metadata.ownerReferences) : !has(oldObject.metadata.ownerReferences)))))"
{{- end -}}

{{- /*
  The narrowed webhooks of hybrid mode, from files/webhooks-hybrid.yaml
  (generated from deploy/base/webhooks.yaml), with this release's service,
  namespace, CA, timeout, failure policy, excluded namespaces and
  break-glass group. Arguments: (list $ "ValidatingWebhookConfiguration" $caBundle).
*/ -}}
{{- define "tiergate.hybridWebhooks" -}}
{{- $root := index . 0 -}}
{{- $kind := index . 1 -}}
{{- $caBundle := index . 2 -}}
{{- $out := list -}}
{{- range $doc := splitList "---\n" ($root.Files.Get "files/webhooks-hybrid.yaml") }}
{{- $o := fromYaml $doc }}
{{- if eq (get $o "kind" | default "") $kind }}
{{- range $w := $o.webhooks }}
{{- $_ := set $w "timeoutSeconds" $root.Values.webhook.timeoutSeconds }}
{{- $_ := set $w "failurePolicy" $root.Values.webhook.failurePolicy }}
{{- $_ := set $w.clientConfig.service "name" (include "tiergate.fullname" $root) }}
{{- $_ := set $w.clientConfig.service "namespace" $root.Release.Namespace }}
{{- if $caBundle }}
{{- $_ := set $w.clientConfig "caBundle" $caBundle }}
{{- end }}
{{- $sel := index $w.namespaceSelector.matchExpressions 0 }}
{{- $_ := set $sel "values" (append (deepCopy $root.Values.webhook.excludeNamespaces) $root.Release.Namespace) }}
{{- $conds := list }}
{{- range $c := $w.matchConditions }}
{{- if ne $c.name "break-glass" }}
{{- $conds = append $conds $c }}
{{- else if $root.Values.webhook.breakGlassGroup }}
{{- $conds = append $conds (dict "name" "break-glass" "expression" (printf "!has(request.userInfo.groups) || !('%s' in request.userInfo.groups)" $root.Values.webhook.breakGlassGroup)) }}
{{- end }}
{{- end }}
{{- $_ := set $w "matchConditions" $conds }}
{{- $out = append $out $w }}
{{- end }}
{{- end }}
{{- end }}
{{- toYaml $out }}
{{- end -}}
