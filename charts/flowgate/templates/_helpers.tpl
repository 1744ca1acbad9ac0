{{/* Names: <release>-<chart>, or the release name alone when it already contains the chart name. */}}
{{- define "flowgate.name" -}}
{{- .Values.nameOverride | default .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{- define "flowgate.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := .Values.nameOverride | default .Chart.Name -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "flowgate.operatorName" -}}{{ include "flowgate.fullname" . }}-operator{{- end -}}
{{- define "flowgate.applianceName" -}}{{ include "flowgate.fullname" . }}-appliance{{- end -}}
{{/* The Lease the operator replicas elect a leader on; RBAC names it in resourceNames. */}}
{{- define "flowgate.leaseName" -}}{{ include "flowgate.operatorName" . }}{{- end -}}

{{- define "flowgate.operatorServiceAccount" -}}
{{- if .Values.operator.serviceAccount.create -}}
{{- .Values.operator.serviceAccount.name | default (include "flowgate.operatorName" .) -}}
{{- else -}}
{{- .Values.operator.serviceAccount.name | default "default" -}}
{{- end -}}
{{- end -}}

{{- define "flowgate.applianceServiceAccount" -}}
{{- if .Values.appliance.serviceAccount.create -}}
{{- .Values.appliance.serviceAccount.name | default (include "flowgate.applianceName" .) -}}
{{- else -}}
{{- .Values.appliance.serviceAccount.name | default "default" -}}
{{- end -}}
{{- end -}}

{{- define "flowgate.eventsNamespace" -}}
{{- .Values.operator.eventsNamespace | default .Release.Namespace -}}
{{- end -}}

{{- define "flowgate.adminServerName" -}}
{{- .Values.adminApi.tls.serverName | default (printf "%s.%s.svc" (include "flowgate.applianceName" .) .Release.Namespace) -}}
{{- end -}}

{{- define "flowgate.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "flowgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: flowgate
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of one component: call with (dict "root" $ "component" "operator"). */}}
{{- define "flowgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "flowgate.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "flowgate.componentLabels" -}}
{{ include "flowgate.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* What the operator selects appliance pods by (--appliance-selector). */}}
{{- define "flowgate.applianceSelector" -}}
app.kubernetes.io/name={{ include "flowgate.name" . }},app.kubernetes.io/instance={{ .Release.Name }},app.kubernetes.io/component=appliance
{{- end -}}

{{- define "flowgate.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end -}}

{{/*
Checks that span several values (values.schema.json checks each value alone). Helm prints the message
and installs nothing.
*/}}
{{- define "flowgate.validate" -}}
{{- $a := .Values.appliance -}}
{{- $minGrace := add $a.drainSeconds 15 -}}
{{- if lt (int $a.terminationGracePeriodSeconds) $minGrace -}}
{{- fail (printf "appliance.terminationGracePeriodSeconds (%d) must be at least appliance.drainSeconds + 15 (%d): the kubelet would kill the appliance while GWLB still sends it the flows it is draining" (int $a.terminationGracePeriodSeconds) $minGrace) -}}
{{- end -}}
{{- if and (eq $a.io "dgram") (eq $a.stateDir.type "hostPath") -}}
{{- fail "appliance.io=dgram runs the appliance as a non-root user, which cannot write a hostPath state directory: set appliance.stateDir.type=emptyDir (or use io=native)" -}}
{{- end -}}
{{- if and (eq $a.io "dgram") (include "flowgate.applianceLowPort" .) -}}
{{- fail "appliance.io=dgram runs the appliance as a non-root user, which cannot bind ports below 1024 (Kubernetes grants no ambient capabilities): use ports of 1024 and above (or io=fast)" -}}
{{- end -}}
{{- if and .Values.monitoring.serviceMonitor.enabled .Values.monitoring.podMonitor.enabled -}}
{{- fail "monitoring.serviceMonitor and monitoring.podMonitor both scrape the same pods: enable one of them" -}}
{{- end -}}
{{- $ports := list (int $a.genevePort) (int $a.httpPort) (int .Values.adminApi.port) -}}
{{- if or (eq (int $a.httpPort) (int $a.genevePort)) (eq (int $a.httpPort) (int .Values.adminApi.port)) (eq (int $a.genevePort) (int .Values.adminApi.port)) -}}
{{- fail (printf "appliance.genevePort, appliance.httpPort and adminApi.port must differ (got %v): the appliance uses host networking and binds all three" $ports) -}}
{{- end -}}
{{- end -}}

{{/* Whether the appliance binds a privileged port (< 1024): it then needs NET_BIND_SERVICE. */}}
{{- define "flowgate.applianceLowPort" -}}
{{- if or (lt (int .Values.appliance.genevePort) 1024) (lt (int .Values.appliance.httpPort) 1024) (lt (int .Values.adminApi.port) 1024) -}}true{{- end -}}
{{- end -}}
