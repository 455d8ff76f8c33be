{{/*
Names, labels and the pieces every duet pod shares. Every long-running role serves /healthz,
/readyz and /metrics on port 8080 (duet.port); the image's ENTRYPOINT is `duet`, so a
container's args start with the command.
*/}}

{{- define "duet.port" -}}8080{{- end -}}

{{- define "duet.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The release's full name; roles append -collector, -stream, ... (a CronJob name has at most 52 characters). */}}
{{- define "duet.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "duet.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels of a role: (dict "ctx" $ "component" "stream"). */}}
{{- define "duet.selectorLabels" -}}
app.kubernetes.io/name: {{ include "duet.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* All labels of a role's resources: (dict "ctx" $ "component" "stream"). */}}
{{- define "duet.labels" -}}
helm.sh/chart: {{ include "duet.chart" .ctx }}
{{ include "duet.selectorLabels" . }}
app.kubernetes.io/part-of: duet
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
{{- end -}}

{{- define "duet.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "duet.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "duet.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The Secret holding store-uri, raw-uri and admin-token. */}}
{{- define "duet.secretName" -}}
{{- default (include "duet.fullname" .) .Values.existingSecret -}}
{{- end -}}

{{/* The Secret's data (also hashed into checksum/secret). */}}
{{- define "duet.secretData" -}}
store-uri: {{ required "mongodb.uri is required (or set existingSecret)" .Values.mongodb.uri | b64enc | quote }}
raw-uri: {{ required "mongodb.rawUri is required (or set existingSecret)" .Values.mongodb.rawUri | b64enc | quote }}
admin-token: {{ .Values.adminToken | default "" | b64enc | quote }}
{{- end -}}

{{/* kafka://HOST:PORT[,HOST:PORT...]/TOPIC, the --source of stream and archive. */}}
{{- define "duet.kafkaSource" -}}
{{- printf "kafka://%s/%s" (required "kafka.brokers is required" .Values.kafka.brokers) (required "kafka.topic is required" .Values.kafka.topic) -}}
{{- end -}}

{{/* The ConfigMap data of a role: (dict "ctx" $ "component" "stream" "config" .Values.stream.config). */}}
{{- define "duet.configData" -}}
{{- range $k, $v := .config }}
{{- if not (regexMatch "^DUET_[A-Z0-9_]+$" $k) }}
{{- fail (printf "%s.config: %q is not a DUET_* variable (upper case, e.g. DUET_THREADS)" $.component $k) }}
{{- end }}
{{ $k }}: {{ $v | toString | quote }}
{{- end }}
{{- end -}}

{{/* A secretKeyRef env var: (dict "ctx" $ "name" "DUET_STORE" "key" "store-uri" "optional" false). */}}
{{- define "duet.secretEnv" -}}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ include "duet.secretName" .ctx }}
      key: {{ .key }}
      {{- if .optional }}
      optional: true
      {{- end }}
{{- end -}}

{{/* Consumer-group roles: at most one member per partition. (dict "ctx" $ "role" "stream" "replicas" N). */}}
{{- define "duet.checkGroupSize" -}}
{{- $partitions := int .ctx.Values.kafka.partitions -}}
{{- if lt $partitions 1 -}}
{{- fail (printf "kafka.partitions must be at least 1 (it is %v)" .ctx.Values.kafka.partitions) -}}
{{- end -}}
{{- if gt (int .replicas) $partitions -}}
{{- fail (printf "%s.replicas (%d) must not exceed kafka.partitions (%d): %s pods form one Kafka consumer group, and a member beyond the partition count gets no partition. Lower %s.replicas, or add partitions to topic %q and raise kafka.partitions." .role (int .replicas) $partitions .role .role .ctx.Values.kafka.topic) -}}
{{- end -}}
{{- end -}}

{{/*
Pod template metadata and the pod-level spec shared by every role:
(dict "ctx" $ "component" "stream" "role" .Values.stream "scrape" true "secret" true
"checksum" STRING); scrape: Prometheus annotations, secret: the pod reads the Secret.
*/}}
{{- define "duet.podMetadata" -}}
labels:
  {{- include "duet.selectorLabels" . | nindent 2 }}
  app.kubernetes.io/part-of: duet
  {{- with .ctx.Values.podLabels }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
annotations:
  checksum/config: {{ .checksum }}
  {{- if and .secret (not .ctx.Values.existingSecret) }}
  checksum/secret: {{ include "duet.secretData" .ctx | sha256sum }}
  {{- end }}
  {{- if and .scrape .ctx.Values.metrics.podAnnotations }}
  prometheus.io/scrape: "true"
  prometheus.io/port: {{ include "duet.port" . | quote }}
  prometheus.io/path: /metrics
  {{- end }}
  {{- with (merge (dict) (.role.podAnnotations | default dict) (.ctx.Values.podAnnotations | default dict)) }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end -}}

{{- define "duet.podSpecCommon" -}}
serviceAccountName: {{ include "duet.serviceAccountName" .ctx }}
automountServiceAccountToken: false
{{- /* Service links would put DUET_<SERVICE>_PORT=tcp://... into the environment, which duet reads options from. */}}
enableServiceLinks: false
securityContext:
  {{- toYaml .ctx.Values.podSecurityContext | nindent 2 }}
{{- with .ctx.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with (.role.nodeSelector | default .ctx.Values.nodeSelector) }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with (.role.tolerations | default .ctx.Values.tolerations) }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with (.role.affinity | default .ctx.Values.affinity) }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .role.topologySpreadConstraints }}
{{- /* A constraint without labelSelector gets the role's selector labels. */}}
topologySpreadConstraints:
  {{- range . }}
  {{- $t := deepCopy . }}
  {{- if not $t.labelSelector }}
  {{- $_ := set $t "labelSelector" (dict "matchLabels" (include "duet.selectorLabels" $ | fromYaml)) }}
  {{- end }}
  - {{ toYaml $t | indent 4 | trim }}
  {{- end }}
{{- end }}
{{- end -}}

{{/* The container fields every role shares (after name and args). */}}
{{- define "duet.containerCommon" -}}
image: {{ include "duet.image" .ctx }}
imagePullPolicy: {{ .ctx.Values.image.pullPolicy }}
securityContext:
  {{- toYaml .ctx.Values.securityContext | nindent 2 }}
resources:
  {{- required (printf "%s.resources is required" .component) .role.resources | toYaml | nindent 2 }}
envFrom:
  - configMapRef:
      name: {{ include "duet.fullname" .ctx }}-{{ .component }}
{{- end -}}

{{- define "duet.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpSizeLimit }}
{{- end -}}

{{- define "duet.tmpMount" -}}
- name: tmp
  mountPath: /tmp
{{- end -}}

{{/* Port, probes and preStop of a long-running role: (dict "ctx" $ "role" .Values.api). */}}
{{- define "duet.serverContainer" -}}
ports:
  - name: http
    containerPort: {{ include "duet.port" . }}
    protocol: TCP
startupProbe:
  httpGet:
    path: /healthz
    port: http
  {{- toYaml .role.probes.startup | nindent 2 }}
livenessProbe:
  httpGet:
    path: /healthz
    port: http
  {{- toYaml .role.probes.liveness | nindent 2 }}
readinessProbe:
  httpGet:
    path: /readyz
    port: http
  {{- toYaml .role.probes.readiness | nindent 2 }}
{{- if and .role.preStopSleepSeconds (semverCompare ">=1.30-0" .ctx.Capabilities.KubeVersion.Version) }}
lifecycle:
  preStop:
    sleep:
      seconds: {{ .role.preStopSleepSeconds }}
{{- end }}
{{- end -}}

{{/* A role's extra env and args. */}}
{{- define "duet.extraEnv" -}}
{{- with .role.env }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* checksum/config of a role: (dict "ctx" $ "component" "stream"). */}}
{{- define "duet.configChecksum" -}}
{{- include "duet.configData" (dict "ctx" .ctx "component" .component "config" (index .ctx.Values .component).config) | trim | sha256sum -}}
{{- end -}}
