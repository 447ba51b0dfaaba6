{{/*
Names are the release's, unabbreviated: the operator derives them from `--release`
(`<release>-gateway-config` Secrets, the `<release>-operator` Lease, the `<release>-gateway`
Service whose `admin` port it reads), so they cannot be overridden.
*/}}

{{- define "manifold.operator.name" -}}
{{ .Release.Name }}-operator
{{- end }}

{{- define "manifold.gateway.name" -}}
{{ .Release.Name }}-gateway
{{- end }}

{{- define "manifold.sessionKeys.secretName" -}}
{{ .Values.sessionKeys.existingSecret | default (printf "%s-session-keys" .Release.Name) }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "manifold.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: manifold
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}

{{- define "manifold.operator.selectorLabels" -}}
app.kubernetes.io/name: manifold-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "manifold.gateway.selectorLabels" -}}
app.kubernetes.io/name: manifold-gateway
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: gateway
{{- end }}

{{- define "manifold.operator.labels" -}}
{{ include "manifold.labels" . }}
{{ include "manifold.operator.selectorLabels" . }}
{{- end }}

{{- define "manifold.gateway.labels" -}}
{{ include "manifold.labels" . }}
{{ include "manifold.gateway.selectorLabels" . }}
{{- end }}

{{/* An image reference: `registry/repository:tag`, or `@digest` when one is given. The tag
defaults to the chart's appVersion. Takes (dict "image" .Values.<component>.image "root" $). */}}
{{- define "manifold.image" -}}
{{- $repository := .image.repository -}}
{{- if .image.registry -}}
{{- $repository = printf "%s/%s" .image.registry .image.repository -}}
{{- end -}}
{{- if .image.digest -}}
{{ $repository }}@{{ .image.digest }}
{{- else -}}
{{ $repository }}:{{ .image.tag | default .root.Chart.AppVersion }}
{{- end -}}
{{- end }}

{{/* The URL clients reach the gateways at, for routes' `status.url`. */}}
{{- define "manifold.gateway.url" -}}
{{ .Values.gateway.url | default (printf "http://%s.%s.svc:8080" (include "manifold.gateway.name" .) .Release.Namespace) }}
{{- end }}

{{/* A rule list of files/rbac/, without its comments; the file must exist (it is the RBAC's
one source). */}}
{{- define "manifold.rbacRules" -}}
{{- $file := .root.Files.Get (printf "files/rbac/%s" .file) -}}
{{- $rules := regexReplaceAll "(?m)^#.*\n" $file "" | trim -}}
{{- if not $rules -}}
{{- fail (printf "files/rbac/%s is missing from the chart: it holds the RBAC rules" .file) -}}
{{- end -}}
{{ $rules }}
{{- end }}

{{/* The pod-level security context both components run with. */}}
{{- define "manifold.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* The container-level security context both components run with. */}}
{{- define "manifold.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* POD_NAMESPACE and POD_NAME from the downward API, and RUST_LOG. Takes (dict "logLevel" …). */}}
{{- define "manifold.env" -}}
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: RUST_LOG
  value: {{ .logLevel | quote }}
{{- end }}

{{/* OpenTelemetry export (runtime/src/telemetry/args.rs reads these), only when an OTLP
endpoint is set: without one the binaries do not trace, so nothing is rendered. The headers
(collector credentials) come from a Secret, never from values. service.instance.id is the
runtime's own, from POD_NAME; k8s.* are expanded by the kubelet from the downward-API
variables that manifold.env defines before this. Takes the root context. */}}
{{- define "manifold.telemetryEnv" -}}
{{- with .Values.telemetry }}
{{- if .otlp.endpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ .otlp.endpoint | quote }}
- name: OTEL_EXPORTER_OTLP_PROTOCOL
  value: {{ .otlp.protocol | quote }}
{{- with .otlp.headersSecret }}
{{- if .name }}
- name: OTEL_EXPORTER_OTLP_HEADERS
  valueFrom:
    secretKeyRef:
      name: {{ .name | quote }}
      key: {{ .key | quote }}
{{- end }}
{{- end }}
- name: OTEL_TRACES_SAMPLER_ARG
  value: {{ .traces.samplingRatio | quote }}
{{- $attributes := list "k8s.namespace.name=$(POD_NAMESPACE)" "k8s.pod.name=$(POD_NAME)" }}
{{- range $key, $value := .resourceAttributes }}
{{- if has $key (list "service.name" "service.instance.id" "k8s.namespace.name" "k8s.pod.name") }}
{{- fail (printf "telemetry.resourceAttributes: `%s` is set by the chart (each component's service name, its pod and namespace)" $key) }}
{{- end }}
{{- if regexMatch "[,=\\s]" $key }}
{{- fail (printf "telemetry.resourceAttributes: the key `%s` holds `,`, `=` or a space" $key) }}
{{- end }}
{{- $attributes = append $attributes (printf "%s=%s" $key $value) }}
{{- end }}
- name: OTEL_RESOURCE_ATTRIBUTES
  value: {{ join "," $attributes | quote }}
{{- if .metrics.otlp }}
- name: MANIFOLD_OTEL_METRICS
  value: "true"
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* Scheduling and pulling, shared by both pod specs. Takes (dict "component" .Values.<c> "root" $). */}}
{{- define "manifold.podPlacement" -}}
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .component.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .component.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .component.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .component.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .component.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- end }}

{{/* An egress rule for DNS, added to restricted egress. */}}
{{- define "manifold.networkPolicy.dns" -}}
- ports:
    - port: 53
      protocol: UDP
    - port: 53
      protocol: TCP
{{- end }}
