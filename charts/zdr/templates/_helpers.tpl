{{/* Chart name, overridable. */}}
{{- define "zdr.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name of the release's objects: <release>-zdr, or the release name if it contains the chart name. */}}
{{- define "zdr.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "zdr.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels that select the controller's pods: never change them after install. */}}
{{- define "zdr.selectorLabels" -}}
app.kubernetes.io/name: {{ include "zdr.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end }}

{{/* Labels on every object of the chart. */}}
{{- define "zdr.labels" -}}
helm.sh/chart: {{ include "zdr.chart" . }}
{{ include "zdr.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: zdr
{{- end }}

{{- define "zdr.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "zdr.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "zdr.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The agent image: each empty agent.image field takes the controller's image value. */}}
{{- define "zdr.agentImage" -}}
{{- $repo := default .Values.image.repository .Values.agent.image.repository }}
{{- $tag := default (default .Chart.AppVersion .Values.image.tag) .Values.agent.image.tag }}
{{- printf "%s:%s" $repo $tag }}
{{- end }}

{{/* "true" when leader election is on: explicit value, else replicas > 1. */}}
{{- define "zdr.leaderElect" -}}
{{- if kindIs "invalid" .Values.leaderElection.enabled }}
{{- if gt (int .Values.replicas) 1 }}true{{ else }}false{{ end }}
{{- else }}
{{- if .Values.leaderElection.enabled }}true{{ else }}false{{ end }}
{{- end }}
{{- end }}

{{/* Rules of the controller's ClusterRole, or of its Role in each watched namespace: exactly
the rules of src/controller/rbac.rs with scope Watched (tests/chart.rs compares). */}}
{{- define "zdr.rules" -}}
- apiGroups: ["zdr.dev"]
  resources: ["zerodowntimerollouts"]
  verbs: ["get", "list", "watch"]
# Server-side apply of the status; the spec is never written.
- apiGroups: ["zdr.dev"]
  resources: ["zerodowntimerollouts/status"]
  verbs: ["patch"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch", "create", "delete", "patch"]
- apiGroups: [""]
  resources: ["pods/status"]
  verbs: ["patch"]
- apiGroups: ["apps"]
  resources: ["controllerrevisions"]
  verbs: ["get", "list", "watch", "create", "delete", "patch"]
- apiGroups: ["discovery.k8s.io"]
  resources: ["endpointslices"]
  verbs: ["get", "list", "watch"]
# Canary: read the stable and canary Services and add zdr.dev/revision to their selectors.
- apiGroups: [""]
  resources: ["services"]
  verbs: ["get", "patch"]
# spec.analysis.prometheus.bearerToken / ca: read the named Secret when measuring (get only:
# no list or watch, so the controller cannot enumerate Secrets).
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
# Events on rollouts (events.k8s.io/v1; a repeated event is patched into a series).
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
# Canary traffic: the router reads the HTTPRoute or VirtualService and writes it back whole
# (a conditional update with the resourceVersion it read).
- apiGroups: ["gateway.networking.k8s.io"]
  resources: ["httproutes"]
  verbs: ["get", "update"]
- apiGroups: ["networking.istio.io"]
  resources: ["virtualservices"]
  verbs: ["get", "update"]
{{- end }}
