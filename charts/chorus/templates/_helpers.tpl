{{/* Names, labels and shared pieces of the Chorus chart. */}}

{{- define "chorus.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Resource name prefix; short enough that "<fullname>-router-NN" stays a valid router name. */}}
{{- define "chorus.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "chorus.gateway.fullname" -}}{{ include "chorus.fullname" . }}-gateway{{- end }}
{{- define "chorus.router.fullname" -}}{{ include "chorus.fullname" . }}-router{{- end }}
{{/* The routers' headless Service: each router's stable DNS name is <pod>.<this>.<ns>.svc. */}}
{{- define "chorus.router.headless" -}}{{ include "chorus.fullname" . }}-router-headless{{- end }}

{{- define "chorus.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "chorus.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: chorus
{{- end }}

{{/* selectorLabels: dict "ctx" $ "component" "gateway" */}}
{{- define "chorus.selectorLabels" -}}
app.kubernetes.io/name: {{ include "chorus.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "chorus.componentLabels" -}}
{{ include "chorus.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "chorus.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "chorus.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "chorus.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}
{{- end }}

{{/* The gateway's grace period: the value given, or preStop + drain window + drain timeout + 5 s. */}}
{{- define "chorus.gateway.drainSeconds" -}}
{{- $g := .Values.gateway }}
{{- add (int $g.preStopSleepSeconds) (int $g.drainWindowSeconds) (int $g.drainTimeoutSeconds) }}
{{- end }}

{{- define "chorus.gateway.gracePeriod" -}}
{{- $need := include "chorus.gateway.drainSeconds" . | int }}
{{- $given := .Values.gateway.terminationGracePeriodSeconds }}
{{- if kindIs "invalid" $given }}
{{- add $need 5 }}
{{- else if le (int $given) $need }}
{{- fail (printf "gateway.terminationGracePeriodSeconds (%d) must be larger than preStopSleepSeconds + drainWindowSeconds + drainTimeoutSeconds (%d), or the kubelet kills gateways before they have drained" (int $given) $need) }}
{{- else }}
{{- int $given }}
{{- end }}
{{- end }}

{{/* Settings shared by every process that talks to NATS. */}}
{{- define "chorus.env.cluster" -}}
CHORUS_NATS_URL: {{ .Values.nats.url | quote }}
CHORUS_CLUSTER_PREFIX: {{ .Values.cluster.prefix | quote }}
CHORUS_MEMBER_TTL: {{ .Values.cluster.memberTTL | quote }}
CHORUS_LOG: {{ .Values.cluster.log | quote }}
CHORUS_LOG_FORMAT: {{ .Values.cluster.logFormat | quote }}
CHORUS_MAX_BODY_BYTES: {{ .Values.cluster.maxBodyBytes | toString | quote }}
CHORUS_MAX_ATTACHMENT_BYTES: {{ .Values.cluster.maxAttachmentBytes | toString | quote }}
{{- end }}

{{/* Traces, for gateways and routers (docs/operations/tracing.md); nothing when off. */}}
{{- define "chorus.env.tracing" -}}
{{- with .Values.tracing.otlpEndpoint }}
OTEL_EXPORTER_OTLP_ENDPOINT: {{ . | quote }}
CHORUS_TRACE_SAMPLE_RATIO: {{ $.Values.tracing.sampleRatio | toString | quote }}
{{- end }}
{{- end }}

{{/* Settings of the database, for the routers and the migration. */}}
{{- define "chorus.env.cql" -}}
CHORUS_CQL_CONTACT_POINTS: {{ join "," .Values.cql.contactPoints | quote }}
CHORUS_CQL_KEYSPACE: {{ .Values.cql.keyspace | quote }}
CHORUS_CQL_CONSISTENCY: {{ .Values.cql.consistency | quote }}
CHORUS_CQL_REQUEST_TIMEOUT: {{ .Values.cql.requestTimeout | quote }}
{{- end }}

{{/* extraEnv: dict "env" map "reserved" list "what" "gateway.env": renders a map of CHORUS_*
variables, refusing those the chart sets itself (a second value would silently lose). */}}
{{- define "chorus.extraEnv" -}}
{{- range $k, $v := .env }}
{{- if has $k $.reserved }}
{{- fail (printf "%s.%s is set by the chart; use the chart's own value for it (values.yaml)" $.what $k) }}
{{- end }}
{{ $k }}: {{ $v | toString | quote }}
{{- end }}
{{- end }}

{{- define "chorus.gateway.reservedEnv" -}}
{{- list "CHORUS_NATS_URL" "CHORUS_CLUSTER_PREFIX" "CHORUS_MEMBER_TTL" "CHORUS_LOG" "CHORUS_LOG_FORMAT" "CHORUS_MAX_BODY_BYTES" "CHORUS_MAX_ATTACHMENT_BYTES" "CHORUS_LISTEN" "CHORUS_WEB" "CHORUS_ALLOWED_ORIGINS" "CHORUS_DRAIN_WINDOW" "CHORUS_DRAIN_TIMEOUT" "CHORUS_JWT_SECRET" "CHORUS_TRACE_SAMPLE_RATIO" "CHORUS_TRACE_CLIENT_PARENT" | toJson }}
{{- end }}

{{- define "chorus.router.reservedEnv" -}}
{{- list "CHORUS_NATS_URL" "CHORUS_CLUSTER_PREFIX" "CHORUS_MEMBER_TTL" "CHORUS_LOG" "CHORUS_LOG_FORMAT" "CHORUS_MAX_BODY_BYTES" "CHORUS_MAX_ATTACHMENT_BYTES" "CHORUS_CQL_CONTACT_POINTS" "CHORUS_CQL_KEYSPACE" "CHORUS_CQL_CONSISTENCY" "CHORUS_CQL_REQUEST_TIMEOUT" "CHORUS_CQL_USERNAME" "CHORUS_CQL_PASSWORD" "CHORUS_CQL_PASSWORD_FILE" "CHORUS_GRPC_LISTEN" "CHORUS_HTTP_LISTEN" "CHORUS_SESSION_TTL" "CHORUS_CLOCK_DRIFT" "CHORUS_ROUTER_NAME" "CHORUS_ADVERTISE_URL" "POD_NAME" "CHORUS_JWT_SECRET" "CHORUS_TRACE_SAMPLE_RATIO" | toJson }}
{{- end }}

{{/* The database login from cql.auth.existingSecret, as env entries (routers and the
migration Job); nothing when cql.auth.enabled is false. The password never enters a
ConfigMap or the pod spec: both come from the Secret at start. */}}
{{- define "chorus.env.cqlLogin" -}}
{{- if .Values.cql.auth.enabled }}
- name: CHORUS_CQL_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ .Values.cql.auth.existingSecret }}
      key: {{ .Values.cql.auth.usernameKey }}
- name: CHORUS_CQL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .Values.cql.auth.existingSecret }}
      key: {{ .Values.cql.auth.passwordKey }}
{{- end }}
{{- end }}

{{/* Checks that the schema cannot express; called from every workload template. */}}
{{- define "chorus.validate" -}}
{{- if and .Values.gateway.autoscaling.enabled (lt (int .Values.gateway.autoscaling.maxReplicas) (int .Values.gateway.autoscaling.minReplicas)) }}
{{- fail "gateway.autoscaling.maxReplicas must be at least minReplicas" }}
{{- end }}
{{- if and .Values.gateway.autoscaling.enabled (kindIs "invalid" .Values.gateway.autoscaling.targetCPUUtilizationPercentage) (kindIs "invalid" .Values.gateway.autoscaling.targetMemoryUtilizationPercentage) }}
{{- fail "gateway.autoscaling: set targetCPUUtilizationPercentage or targetMemoryUtilizationPercentage" }}
{{- end }}
{{- $_ := include "chorus.gateway.gracePeriod" . }}
{{- end }}

{{- define "chorus.podSecurityContext" -}}
{{ toYaml .Values.podSecurityContext }}
{{- end }}

{{- define "chorus.securityContext" -}}
{{ toYaml .Values.securityContext }}
{{- end }}

{{/* Default spread over nodes, unless topologySpreadConstraints are given. */}}
{{- define "chorus.spread" -}}
{{- if .values.topologySpreadConstraints }}
{{ toYaml .values.topologySpreadConstraints }}
{{- else }}
- maxSkew: 1
  topologyKey: kubernetes.io/hostname
  whenUnsatisfiable: ScheduleAnyway
  labelSelector:
    matchLabels:
      {{- include "chorus.selectorLabels" (dict "ctx" .ctx "component" .component) | nindent 6 }}
{{- end }}
{{- end }}
