{{/* Names and labels shared by every object of the release. */}}

{{- define "incidentops.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "incidentops.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "incidentops.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "incidentops.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/* Labels of every object; no part-of (the generated CRDs carry it already). */}}
{{- define "incidentops.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}

{{- define "incidentops.selectorLabels" -}}
app.kubernetes.io/name: {{ include "incidentops.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "incidentops.serviceAccountName" -}}
{{- default (include "incidentops.fullname" .) .Values.serviceAccount.name }}
{{- end }}

{{/* The username the operator acts as: the admission policy lets its own writes through. */}}
{{- define "incidentops.username" -}}
{{- printf "system:serviceaccount:%s:%s" .Release.Namespace (include "incidentops.serviceAccountName" .) }}
{{- end }}

{{- define "incidentops.tokenSecretName" -}}
{{- default (printf "%s-webhook" (include "incidentops.fullname" .)) .Values.webhook.existingSecret }}
{{- end }}

{{/* Namespaced mode when watchNamespaces is set: Roles only there (plus the release's own). */}}
{{- define "incidentops.namespaced" -}}
{{- if .Values.watchNamespaces }}true{{ end }}
{{- end }}

{{/*
Secrets and ConfigMaps the settings name ("namespace/name[/key]"), grouped by namespace as JSON:
{"ns": {"secrets": [...], "configmaps": [...]}}. The operator may get exactly these, by name.
*/}}
{{- define "incidentops.namedObjects" -}}
{{- $out := dict }}
{{- $_ := set $out .Release.Namespace (dict "secrets" (list (include "incidentops.tokenSecretName" .)) "configmaps" (list)) }}
{{- range $setting := list "CONTACTS_SECRET" "LLM_API_KEY_SECRET" "PROMETHEUS_TOKEN_SECRET" "PAGERDUTY_WEBHOOK_SECRET_REF" }}
{{- with (get $.Values.settings $setting) }}
{{- $parts := splitList "/" . }}
{{- $ns := index $parts 0 }}
{{- $entry := get $out $ns | default (dict "secrets" (list) "configmaps" (list)) }}
{{- $_ := set $entry "secrets" (append $entry.secrets (index $parts 1) | uniq) }}
{{- $_ := set $out $ns $entry }}
{{- end }}
{{- end }}
{{- range $setting := list "TEMPLATES_CONFIGMAP" "TRIAGE_CONFIGMAP" }}
{{- with (get $.Values.settings $setting) }}
{{- $parts := splitList "/" . }}
{{- $ns := index $parts 0 }}
{{- $entry := get $out $ns | default (dict "secrets" (list) "configmaps" (list)) }}
{{- $_ := set $entry "configmaps" (append $entry.configmaps (index $parts 1) | uniq) }}
{{- $_ := set $out $ns $entry }}
{{- end }}
{{- end }}
{{- toJson $out }}
{{- end }}

{{/* A setting as the operator reads it: lists comma-separated; whole numbers without the exponent that
     values files give them (YAML numbers arrive as float64: 20971520 would render as 2.097152e+07). */}}
{{- define "incidentops.settingValue" -}}
{{- if kindIs "slice" . }}{{ join "," . }}
{{- else if and (kindIs "float64" .) (eq . (float64 (int64 .))) }}{{ int64 . }}
{{- else }}{{ toString . }}
{{- end }}
{{- end }}

{{/* Refuse settings that would leave the operator unable to work under the chart's RBAC. */}}
{{- define "incidentops.validate" -}}
{{- if and .Values.watchNamespaces .Values.incidentNamespace (not (has .Values.incidentNamespace .Values.watchNamespaces)) }}
{{- fail (printf "incidentNamespace %q must be one of watchNamespaces: the operator has no rights elsewhere" .Values.incidentNamespace) }}
{{- end }}
{{- with (get .Values.settings "DEFAULT_ESCALATION_POLICY") }}
{{- if and $.Values.watchNamespaces (contains "/" .) (not (has (first (splitList "/" .)) $.Values.watchNamespaces)) }}
{{- fail (printf "settings.DEFAULT_ESCALATION_POLICY %q is in a namespace outside watchNamespaces: the operator could not read it" .) }}
{{- end }}
{{- end }}
{{- if and (not .Values.serviceAccount.create) (not .Values.serviceAccount.name) }}
{{- fail "serviceAccount.name is required when serviceAccount.create is false" }}
{{- end }}
{{- end }}
