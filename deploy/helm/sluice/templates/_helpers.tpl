{{/* Names and labels. */}}
{{- define "sluice.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "sluice.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "sluice.labels" -}}
app.kubernetes.io/name: {{ include "sluice.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{ include "sluice.extraLabels" . }}
{{- end -}}

{{/* sluice.extraLabels: the labels of every object that select nothing. */}}
{{- define "sluice.extraLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: sluice
{{- end -}}

{{/* sluice.selector: the labels that select one workload's pods.
     Context: dict "root" $ "component" "ingest" ["sink" name]. */}}
{{- define "sluice.selector" -}}
app.kubernetes.io/name: {{ include "sluice.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- with .sink }}
sluice.dev/sink: {{ . }}
{{- end }}
{{- end -}}

{{- define "sluice.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "sluice.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "sluice.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* sluice.rulesDir: where the workers read their rules. */}}
{{- define "sluice.rulesDir" -}}
{{- if .Values.rules.gitSync.enabled -}}
{{- trimSuffix "/" (printf "/git/current/%s" (trimPrefix "/" .Values.rules.gitSync.path)) -}}
{{- else -}}
/etc/sluice/rules
{{- end -}}
{{- end -}}

{{/* sluice.baseConfig: the config the chart generates from the values, as
     YAML; .Values.config is merged over it by sluice.config. */}}
{{- define "sluice.baseConfig" -}}
{{- $v := .root.Values -}}
{{- $ingest := .ingest -}}
bus:
{{- if eq $v.mode "single" }}
  kind: embedded
  data_dir: {{ printf "%s/bus" (trimSuffix "/" $v.single.mountPath) }}
{{- else }}
  kind: kafka
  kafka:
    brokers: {{ required "kafka.brokers: the Kafka bootstrap brokers are required in mode distributed" $v.kafka.brokers | toJson }}
    {{- with $v.kafka.tls }}
    {{- if .enabled }}
    tls:
      {{- if .caSecret.name }}
      ca_file: /etc/sluice/kafka/ca/{{ .caSecret.key }}
      {{- end }}
      {{- if .certSecret.name }}
      cert_file: /etc/sluice/kafka/client/{{ .certSecret.certKey }}
      key_file: /etc/sluice/kafka/client/{{ .certSecret.keyKey }}
      {{- end }}
      insecure_skip_verify: {{ .insecureSkipVerify }}
    {{- end }}
    {{- end }}
    {{- with $v.kafka.sasl }}
    {{- if .enabled }}
    sasl:
      mechanism: {{ .mechanism }}
      username: {{ required "kafka.sasl.username is required with kafka.sasl.enabled" .username | quote }}
      {{- $_ := required "kafka.sasl.passwordSecret.name is required with kafka.sasl.enabled" .passwordSecret.name }}
      password_file: /etc/sluice/kafka/sasl/{{ .passwordSecret.key }}
    {{- end }}
    {{- end }}
{{- end }}
ingest:
  grpc_listen: 0.0.0.0:{{ $v.ports.grpc }}
  http_listen: 0.0.0.0:{{ $v.ports.http }}
  {{- if and $ingest $v.ingest.tokens.secretName }}
  tokens_file: /etc/sluice/ingest/tokens/{{ $v.ingest.tokens.key }}
  {{- end }}
  {{- if and $ingest $v.ingest.tls.secretName }}
  tls:
    cert_file: /etc/sluice/ingest/tls/tls.crt
    key_file: /etc/sluice/ingest/tls/tls.key
    {{- with $v.ingest.tls.clientCAKey }}
    ca_file: /etc/sluice/ingest/tls/{{ . }}
    {{- end }}
  {{- end }}
admin:
  # The pod's address: the kubelet's probes and the metrics scraper reach
  # it there; the NetworkPolicies admit only networkPolicy.adminFrom.
  listen: 0.0.0.0:{{ $v.ports.admin }}
  pprof: false
rules:
  dir: {{ include "sluice.rulesDir" .root }}
{{- end -}}

{{/* sluice.config: one role's config file. Context: dict "root" $, "sinks"
     (the sink values whose entries it holds), "ingest" (bool: it runs the
     ingester, so it names the tokens and TLS files mounted there only). */}}
{{- define "sluice.config" -}}
{{- $root := .root -}}
{{- if hasKey $root.Values.config "sinks" -}}
{{- fail "config.sinks: list the sinks under sinks (one workload each), not under config" -}}
{{- end -}}
{{- $cfg := mustMergeOverwrite (include "sluice.baseConfig" . | fromYaml) (deepCopy $root.Values.config) -}}
{{- $ports := $root.Values.ports -}}
{{- range $key, $port := dict "admin.listen" $ports.admin "ingest.grpc_listen" $ports.grpc "ingest.http_listen" $ports.http -}}
{{- $l := index $cfg (first (splitList "." $key)) (last (splitList "." $key)) | toString -}}
{{- if not (hasSuffix (printf ":%v" $port) $l) -}}
{{- fail (printf "config.%s %q: the probes, Services and NetworkPolicies use ports (%v): set the port there" $key $l $port) -}}
{{- end -}}
{{- end -}}
{{- $entries := list -}}
{{- range .sinks -}}
{{- $entries = append $entries (mustMergeOverwrite (dict "name" .name) (deepCopy .config)) -}}
{{- end -}}
{{- if $entries -}}
{{- $_ := set $cfg "sinks" $entries -}}
{{- end -}}
{{- toYaml $cfg -}}
{{- end -}}

{{/* sluice.configs: every role's config, by ConfigMap key. */}}
{{- define "sluice.configs" -}}
{{- if eq .Values.mode "single" }}
single.yaml: |-
  {{- include "sluice.config" (dict "root" . "sinks" .Values.sinks "ingest" true) | nindent 2 }}
{{- else }}
ingest.yaml: |-
  {{- include "sluice.config" (dict "root" . "sinks" list "ingest" true) | nindent 2 }}
worker.yaml: |-
  {{- include "sluice.config" (dict "root" . "sinks" list) | nindent 2 }}
{{- range .Values.sinks }}
{{ printf "sink-%s.yaml" .name }}: |-
  {{- include "sluice.config" (dict "root" $ "sinks" (list .)) | nindent 2 }}
{{- end }}
{{- end }}
{{- end -}}

{{/* sluice.pod: the pod template of one workload. Context: dict
     "root" $, "component", "sink" (name, sinks only), "args" (the
     sluice command), "configKey", "resources", "gomemlimit" (bool),
     "ports" (list of dict name port), "mounts" and "volumes" (extra),
     "ingestFiles" (bool: tokens and TLS), "bus" (bool: Kafka files),
     "rules" (bool), "extraEnv". */}}
{{- define "sluice.pod" -}}
{{- $root := .root -}}
{{- $v := $root.Values -}}
{{- $configs := include "sluice.configs" $root | trim | fromYaml -}}
{{- $config := get $configs .configKey -}}
{{- $mounts := list (dict "name" "config" "mountPath" "/etc/sluice/sluice.yaml" "subPath" "sluice.yaml" "readOnly" true) (dict "name" "tmp" "mountPath" "/tmp") -}}
{{- $volumes := list (dict "name" "config" "configMap" (dict "name" (include "sluice.fullname" $root) "items" (list (dict "key" .configKey "path" "sluice.yaml")))) (dict "name" "tmp" "emptyDir" (dict "sizeLimit" "64Mi")) -}}
{{- if and .bus (ne $v.mode "single") -}}
{{- with $v.kafka.tls -}}
{{- if and .enabled .caSecret.name -}}
{{- $mounts = append $mounts (dict "name" "kafka-ca" "mountPath" "/etc/sluice/kafka/ca" "readOnly" true) -}}
{{- $volumes = append $volumes (dict "name" "kafka-ca" "secret" (dict "secretName" .caSecret.name)) -}}
{{- end -}}
{{- if and .enabled .certSecret.name -}}
{{- $mounts = append $mounts (dict "name" "kafka-client" "mountPath" "/etc/sluice/kafka/client" "readOnly" true) -}}
{{- $volumes = append $volumes (dict "name" "kafka-client" "secret" (dict "secretName" .certSecret.name)) -}}
{{- end -}}
{{- end -}}
{{- if $v.kafka.sasl.enabled -}}
{{- $mounts = append $mounts (dict "name" "kafka-sasl" "mountPath" "/etc/sluice/kafka/sasl" "readOnly" true) -}}
{{- $volumes = append $volumes (dict "name" "kafka-sasl" "secret" (dict "secretName" $v.kafka.sasl.passwordSecret.name)) -}}
{{- end -}}
{{- end -}}
{{- if .ingestFiles -}}
{{- if $v.ingest.tokens.secretName -}}
{{- $mounts = append $mounts (dict "name" "ingest-tokens" "mountPath" "/etc/sluice/ingest/tokens" "readOnly" true) -}}
{{- $volumes = append $volumes (dict "name" "ingest-tokens" "secret" (dict "secretName" $v.ingest.tokens.secretName)) -}}
{{- end -}}
{{- if $v.ingest.tls.secretName -}}
{{- $mounts = append $mounts (dict "name" "ingest-tls" "mountPath" "/etc/sluice/ingest/tls" "readOnly" true) -}}
{{- $volumes = append $volumes (dict "name" "ingest-tls" "secret" (dict "secretName" $v.ingest.tls.secretName)) -}}
{{- end -}}
{{- end -}}
{{- $checkMounts := $mounts -}}
{{- if .rules -}}
{{- if $v.rules.gitSync.enabled -}}
{{- $mounts = append $mounts (dict "name" "rules-git" "mountPath" "/git" "readOnly" true) -}}
{{- $volumes = append $volumes (dict "name" "rules-git" "emptyDir" (dict "sizeLimit" "256Mi")) -}}
{{- else -}}
{{- $mounts = append $mounts (dict "name" "rules" "mountPath" "/etc/sluice/rules" "readOnly" true) -}}
{{- $volumes = append $volumes (dict "name" "rules" "configMap" (dict "name" (default (printf "%s-rules" (include "sluice.fullname" $root)) $v.rules.existingConfigMap))) -}}
{{- end -}}
{{- end -}}
{{- range .mounts }}{{ $mounts = append $mounts . }}{{ $checkMounts = append $checkMounts . }}{{ end -}}
{{- range .volumes }}{{ $volumes = append $volumes . }}{{ end -}}
metadata:
  labels:
    {{- include "sluice.selector" . | nindent 4 }}
    {{- include "sluice.extraLabels" $root | nindent 4 }}
    {{- with $v.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    # The config is read at start only: a change of this pod's config
    # restarts it. Rules, ingest tokens and TLS files reload by themselves.
    checksum/config: {{ $config | sha256sum }}
    {{- if $v.metrics.podAnnotations }}
    prometheus.io/scrape: "true"
    prometheus.io/port: {{ $v.ports.admin | quote }}
    {{- end }}
    {{- with $v.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "sluice.serviceAccountName" $root }}
  automountServiceAccountToken: {{ $v.serviceAccount.automountToken }}
  {{- if le (int $v.terminationGracePeriodSeconds) 30 }}
  {{- fail "terminationGracePeriodSeconds must exceed the 30 s drain of sluice's shutdown" }}
  {{- end }}
  terminationGracePeriodSeconds: {{ $v.terminationGracePeriodSeconds }}
  securityContext:
    {{- toYaml $v.podSecurityContext | nindent 4 }}
  {{- with $v.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  {{- with $v.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- if $v.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- range $v.topologySpreadConstraints }}
    - {{ toYaml . | nindent 6 | trim }}
      labelSelector:
        matchLabels:
          {{- include "sluice.selector" $ | nindent 10 }}
    {{- end }}
  {{- end }}
  initContainers:
    # The binary checks its own config (and the files it names: tokens,
    # TLS, Kafka secrets) before the pod starts: a bad value fails the
    # rollout here, with file:line, instead of crash-looping.
    - name: check
      image: {{ include "sluice.image" $root }}
      imagePullPolicy: {{ $v.image.pullPolicy }}
      args: ["check", "-c", "/etc/sluice/sluice.yaml"]
      securityContext:
        {{- toYaml $v.securityContext | nindent 8 }}
      resources:
        requests: {cpu: 10m, memory: 32Mi}
        limits: {memory: 128Mi}
      volumeMounts:
        {{- toYaml $checkMounts | nindent 8 }}
    {{- if and .rules $v.rules.gitSync.enabled }}
    # The first checkout, before the worker starts: without it the worker
    # would process its first batches without rules.
    {{- include "sluice.gitSync" (dict "root" $root "name" "git-sync-init" "oneTime" true) | nindent 4 }}
    {{- end }}
  containers:
    - name: sluice
      image: {{ include "sluice.image" $root }}
      imagePullPolicy: {{ $v.image.pullPolicy }}
      args: {{ toJson .args }}
      {{- if or .gomemlimit .extraEnv }}
      env:
        {{- if .gomemlimit }}
        # The Go runtime's soft memory limit follows the container's (it
        # wins over memory_limit): the collector works harder near it
        # rather than the container being killed.
        - name: GOMEMLIMIT
          valueFrom:
            resourceFieldRef: {resource: limits.memory, divisor: "1"}
        {{- end }}
        {{- with .extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- end }}
      ports:
        {{- range .ports }}
        - name: {{ .name }}
          containerPort: {{ .port }}
          protocol: TCP
        {{- end }}
        - name: admin
          containerPort: {{ $v.ports.admin }}
          protocol: TCP
      readinessProbe:
        httpGet: {path: /readyz, port: admin}
        {{- toYaml $v.probes.readiness | nindent 8 }}
      livenessProbe:
        httpGet: {path: /healthz, port: admin}
        {{- toYaml $v.probes.liveness | nindent 8 }}
      securityContext:
        {{- toYaml $v.securityContext | nindent 8 }}
      resources:
        {{- toYaml .resources | nindent 8 }}
      volumeMounts:
        {{- toYaml $mounts | nindent 8 }}
    {{- if and .rules $v.rules.gitSync.enabled }}
    # git-sync keeps the checkout of the rules' repository in /git/current
    # up to date; the worker reloads the rules when the files change.
    {{- include "sluice.gitSync" (dict "root" $root "name" "git-sync" "oneTime" false) | nindent 4 }}
    {{- end }}
  volumes:
    {{- toYaml $volumes | nindent 4 }}
{{- end -}}


{{/* sluice.gitSync: a git-sync container keeping a checkout of the rules'
     repository in /git/current. Context: dict "root" $, "name",
     "oneTime" (bool: the first checkout, as an initContainer). */}}
{{- define "sluice.gitSync" -}}
{{- $v := .root.Values -}}
{{- with $v.rules.gitSync -}}
- name: {{ $.name }}
  image: {{ .image }}
  args:
    - --repo={{ required "rules.gitSync.repo is required with rules.gitSync.enabled" .repo }}
    - --ref={{ .ref }}
    - --root=/git
    - --link=current
    - --period={{ .period }}
    {{- if $.oneTime }}
    - --one-time
    {{- end }}
  env:
    - {name: HOME, value: /tmp}
  {{- with .credentialsSecret }}
  envFrom:
    - secretRef: {name: {{ . }}}
  {{- end }}
  securityContext:
    {{- toYaml $v.securityContext | nindent 4 }}
  resources:
    {{- toYaml .resources | nindent 4 }}
  volumeMounts:
    - {name: rules-git, mountPath: /git}
    - {name: tmp, mountPath: /tmp}
{{- end -}}
{{- end -}}
