{{/* Names and labels shared by the templates. */}}

{{- define "shoal.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The release's full name. It names the StatefulSet, so it is kept short
enough for pod names (plus "-NN") and the headless Service (plus
"-headless") to stay within 63 characters.
*/}}
{{- define "shoal.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "shoal.headless" -}}
{{- printf "%s-headless" (include "shoal.fullname" .) }}
{{- end }}

{{- define "shoal.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "shoal.selectorLabels" -}}
app.kubernetes.io/name: {{ include "shoal.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "shoal.labels" -}}
helm.sh/chart: {{ include "shoal.chart" . }}
{{ include "shoal.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "shoal.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{- define "shoal.secretName" -}}
{{- if .Values.auth.existingSecret }}
{{- .Values.auth.existingSecret }}
{{- else }}
{{- include "shoal.fullname" . }}
{{- end }}
{{- end }}

{{/*
The gossip addresses every node joins: the stable DNS names of the first
`replicas` pods, through the headless Service (which publishes pods before
they are ready, so that they can find each other and form the cluster).
*/}}
{{- define "shoal.join" -}}
{{- $fullname := include "shoal.fullname" . -}}
{{- $headless := include "shoal.headless" . -}}
{{- $addrs := list -}}
{{- range $i := until (int .Values.replicas) -}}
{{- $addrs = append $addrs (printf "%s-%d.%s.%s.svc.%s:%d" $fullname $i $headless $.Release.Namespace $.Values.clusterDomain (int $.Values.ports.gossip)) -}}
{{- end -}}
{{- join "," $addrs -}}
{{- end }}

{{/*
The pods' roles, in app.kubernetes.io/component: servers (the StatefulSet)
and clients (clients.kind). The StatefulSet's selector predates the label
and cannot change, so what must pick servers only (the PodDisruptionBudget,
the servers' anti-affinity) selects "not a client": it matches server pods
with and without the label.
*/}}
{{- define "shoal.clientsName" -}}
{{- printf "%s-client" (include "shoal.fullname" .) }}
{{- end }}

{{- define "shoal.clientSelectorLabels" -}}
{{ include "shoal.selectorLabels" . }}
app.kubernetes.io/component: client
{{- end }}

{{- define "shoal.serverSelector" -}}
matchLabels:
  {{- include "shoal.selectorLabels" . | nindent 2 }}
matchExpressions:
  - key: app.kubernetes.io/component
    operator: NotIn
    values: [client]
{{- end }}

{{/*
The pod annotation that restarts the pods when the chart's Secret changes.
*/}}
{{- define "shoal.checksumAnnotations" -}}
{{- if and .Values.auth.enabled (not .Values.auth.existingSecret) -}}
checksum/secret: {{ include (print $.Template.BasePath "/secret.yaml") . | sha256sum }}
{{- end }}
{{- end }}

{{/*
The agent flags servers and clients share: the name, the listeners, the
servers to join, TLS, logging and modules.
*/}}
{{- define "shoal.agentArgs" -}}
- --node-name=$(POD_NAME)
- --data-dir=/data
- --http-addr=0.0.0.0:{{ .Values.ports.http }}
- --raft-addr=0.0.0.0:{{ .Values.ports.raft }}
- --gossip-addr=0.0.0.0:{{ .Values.ports.gossip }}
- --join={{ include "shoal.join" . }}
{{- if .Values.tls.secretName }}
- --tls-cert=/tls/tls.crt
- --tls-key=/tls/tls.key
{{- if .Values.tls.clientCASecretName }}
- --tls-client-ca=/tls-client-ca/ca.crt
{{- end }}
{{- end }}
- --log-level={{ .Values.agent.logLevel }}
- --log-format={{ .Values.agent.logFormat }}
{{- with .Values.agent.modules }}
- --modules={{ join "," . }}
{{- end }}
{{- end }}

{{/*
The credentials from the Secret: the API token (auth.enabled) and the
cluster secret (always: without it any pod that reaches the cluster or
gossip port could join).
*/}}
{{- define "shoal.credentialsEnv" -}}
- name: SHOAL_CLUSTER_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ include "shoal.secretName" . }}
      key: {{ .Values.auth.clusterSecretKey }}
{{- if .Values.auth.enabled }}
- name: SHOAL_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "shoal.secretName" . }}
      key: {{ .Values.auth.tokenKey }}
{{- end }}
{{- end }}

{{/*
The ports every agent listens on: the API, the cluster port (Raft and
node-to-node calls; a client serves the latter) and gossip. Called with
(dict "ports" .Values.ports "hostPort" N): N > 0 also publishes the API on
the node's IP.
*/}}
{{- define "shoal.agentPorts" -}}
- name: http
  containerPort: {{ .ports.http }}
  {{- if gt (int .hostPort) 0 }}
  hostPort: {{ .hostPort }}
  {{- end }}
  protocol: TCP
- name: raft
  containerPort: {{ .ports.raft }}
  protocol: TCP
- name: gossip-tcp
  containerPort: {{ .ports.gossip }}
  protocol: TCP
- name: gossip-udp
  containerPort: {{ .ports.gossip }}
  protocol: UDP
{{- end }}

{{- define "shoal.probes" -}}
readinessProbe:
  httpGet:
    path: /v1/health/ready
    port: http
    {{- if .Values.tls.secretName }}
    scheme: HTTPS
    {{- end }}
  {{- toYaml .Values.readinessProbe | nindent 2 }}
livenessProbe:
  httpGet:
    path: /v1/health/live
    port: http
    {{- if .Values.tls.secretName }}
    scheme: HTTPS
    {{- end }}
  {{- toYaml .Values.livenessProbe | nindent 2 }}
{{- end }}

{{- define "shoal.volumeMounts" -}}
- name: data
  mountPath: /data
{{- if .Values.tls.secretName }}
- name: tls
  mountPath: /tls
  readOnly: true
{{- if .Values.tls.clientCASecretName }}
- name: tls-client-ca
  mountPath: /tls-client-ca
  readOnly: true
{{- end }}
{{- end }}
{{- end }}

{{/*
The TLS volumes (tls.secretName): a kubernetes.io/tls Secret (cert-manager
writes one) whose files change in place when it is renewed; shoal serves
the new pair.
*/}}
{{- define "shoal.tlsVolumes" -}}
{{- if .Values.tls.secretName -}}
- name: tls
  secret:
    secretName: {{ .Values.tls.secretName }}
{{- if .Values.tls.clientCASecretName }}
- name: tls-client-ca
  secret:
    secretName: {{ .Values.tls.clientCASecretName }}
{{- end }}
{{- end }}
{{- end }}
