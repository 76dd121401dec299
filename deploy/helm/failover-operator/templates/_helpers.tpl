{{/*
The chart's name (nameOverride wins), at most 63 characters.
*/}}
{{- define "failover-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of the release's objects: fullnameOverride, else the release name, plus
the chart name unless the release name contains it; at most 63 characters.
*/}}
{{- define "failover-operator.fullname" -}}
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

{{/*
The chart label: name and version.
*/}}
{{- define "failover-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The labels of every object: the selector labels, then `extra` (a map), then the chart's
own, then commonLabels, earlier ones winning (nothing overrides the labels the
Deployment selects its Pods by). Called with (dict "root" $ "extra" $map).
*/}}
{{- define "failover-operator.labelsWith" -}}
{{- $root := .root }}
{{- $selector := include "failover-operator.selectorLabels" $root | fromYaml }}
{{- $chart := dict
  "helm.sh/chart" (include "failover-operator.chart" $root)
  "app.kubernetes.io/version" $root.Chart.AppVersion
  "app.kubernetes.io/managed-by" $root.Release.Service
  "app.kubernetes.io/part-of" "failover" }}
{{- toYaml (merge (dict) $selector (.extra | default dict) $chart ($root.Values.commonLabels | default dict)) }}
{{- end }}

{{/*
The labels of every object, without extra ones.
*/}}
{{- define "failover-operator.labels" -}}
{{- include "failover-operator.labelsWith" (dict "root" . "extra" dict) }}
{{- end }}

{{/*
The labels that select the operator's Pods (never change them: a Deployment's selector
is immutable).
*/}}
{{- define "failover-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "failover-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{/*
The ServiceAccount's name.
*/}}
{{- define "failover-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "failover-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The leader election Lease's name.
*/}}
{{- define "failover-operator.leaseName" -}}
{{- default (include "failover-operator.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}

{{/*
The image: repository@digest, or repository:tag (the tag defaults to appVersion).
*/}}
{{- define "failover-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
The PriorityClass of the Pods: priorityClassName, else the created one, else none.
*/}}
{{- define "failover-operator.priorityClassName" -}}
{{- if .Values.priorityClassName }}
{{- .Values.priorityClassName }}
{{- else if .Values.priorityClass.create }}
{{- include "failover-operator.fullname" . }}
{{- end }}
{{- end }}

{{/*
The PodDisruptionBudget's API version: policy/v1 where the API server serves it
(Kubernetes 1.21 and later), policy/v1beta1 before (1.20). `helm install` and `helm
upgrade` see the API server's own versions; an offline render (`helm template`) sees
Helm's built-in list, which has both, so there the Kubernetes version decides
(`--kube-version`).
*/}}
{{- define "failover-operator.pdbApiVersion" -}}
{{- if .Capabilities.APIVersions.Has "policy/v1/PodDisruptionBudget" }}
{{- print "policy/v1" }}
{{- else if and (.Capabilities.APIVersions.Has "policy/v1") (semverCompare ">=1.21-0" .Capabilities.KubeVersion.Version) }}
{{- print "policy/v1" }}
{{- else }}
{{- print "policy/v1beta1" }}
{{- end }}
{{- end }}

{{/*
Checks of values the schema cannot express; each failure says what to change.
*/}}
{{- define "failover-operator.validate" -}}
{{- if not .Values.clusterName }}
{{- fail "clusterName is required: this cluster's name as the FailoverGroups' spec.clusters list it (--set clusterName=east)" }}
{{- end }}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.leaderElection.enabled) }}
{{- fail (printf "replicaCount is %d but leaderElection.enabled is false: replicas without leader election would all run the group loops; enable leader election or run one replica" (int .Values.replicaCount)) }}
{{- end }}
{{- if and .Values.dynamodb.endpoint .Values.dynamodb.credentials.secretName }}
{{- fail "dynamodb.credentials.secretName cannot be used with dynamodb.endpoint: with an endpoint (DynamoDB Local) the operator uses static dummy credentials and would ignore the Secret" }}
{{- end }}
{{- if and .Values.serviceMonitor.enabled (not .Values.metrics.service.enabled) }}
{{- fail "serviceMonitor.enabled needs metrics.service.enabled: the ServiceMonitor scrapes the metrics Service" }}
{{- end }}
{{- if and .Values.rbac.fluxNamespaces (not .Values.watchNamespaces) }}
{{- fail "rbac.fluxNamespaces applies only with watchNamespaces: without it the ClusterRole already covers every namespace" }}
{{- end }}
{{- end }}

{{/*
The operator's rules in the namespaces it watches: a ClusterRole's (every namespace) or
each watched namespace's Role. Every rule says which code needs it. Verbs are exactly
those the code uses; the operator never updates, deletes or creates what it fails over.
*/}}
{{- define "failover-operator.rules" -}}
# FailoverGroups and Failovers: the two controllers list and watch them
# (operator/src/controllers.rs, run: kube-runtime Controllers), and the auto-failover
# watch lists a group's automatic Failovers by label before it creates one
# (operator/src/auto.rs, fire). Nothing reads one by name.
- apiGroups: ["failover.rs"]
  resources: ["failovergroups", "failovers"]
  verbs: ["list", "watch"]
# Auto-failover: the standby's operator creates the Failover that asks for the failover
# (operator/src/auto.rs, fire).
- apiGroups: ["failover.rs"]
  resources: ["failovers"]
  verbs: ["create"]
# The status of both, written by server-side apply of the status subresource, a PATCH
# (operator/src/group.rs, apply_status_as; callers in controllers.rs and auto.rs).
- apiGroups: ["failover.rs"]
  resources: ["failovergroups/status", "failovers/status"]
  verbs: ["patch"]
# Members. Read from watch caches (list, watch: engine/src/k8s/cache.rs and watch.rs),
# by name while a cache lags or a member is named (get: engine/src/k8s/mod.rs,
# KubeCluster::get), and changed by JSON merge patches only (patch:
# engine/src/k8s/mod.rs, KubeCluster::apply). Replicas are set in the Deployment or
# StatefulSet itself, not through the scale subresource.
- apiGroups: ["apps"]
  resources: ["deployments", "statefulsets"]
  verbs: ["get", "list", "watch", "patch"]
# CronJobs are suspended and resumed (spec.suspend), in batch/v1 or, before Kubernetes
# 1.21, batch/v1beta1 (engine/src/k8s/cronjob.rs; RBAC rules name no version).
- apiGroups: ["batch"]
  resources: ["cronjobs"]
  verbs: ["get", "list", "watch", "patch"]
# Ingresses are stopped and started by their class (engine/src/k8s/network.rs).
- apiGroups: ["networking.k8s.io"]
  resources: ["ingresses"]
  verbs: ["get", "list", "watch", "patch"]
{{- if .Values.rbac.istio }}
# Istio VirtualServices are stopped and started by their HTTP routes
# (engine/src/k8s/network.rs).
- apiGroups: ["networking.istio.io"]
  resources: ["virtualservices"]
  verbs: ["get", "list", "watch", "patch"]
{{- end }}
{{- if .Values.rbac.volumeReplication }}
# csi-addons VolumeReplications are demoted and promoted (spec.replicationState:
# engine/src/k8s/volume.rs).
- apiGroups: ["replication.storage.openshift.io"]
  resources: ["volumereplications"]
  verbs: ["get", "list", "watch", "patch"]
{{- end }}
{{- if .Values.rbac.flux }}
{{ include "failover-operator.fluxRules" . }}
{{- end }}
# The group's trace, a ConfigMap failover-trace-<group> in the group's namespace: read
# (get), created once, then replaced with the resourceVersion read (update)
# (engine/src/k8s/trace.rs, recall and remember). Its name depends on the group, so
# resourceNames cannot narrow this.
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "create", "update"]
# Events about the groups (events.k8s.io/v1, in the group's namespace): kube-runtime's
# Recorder creates an Event and patches it when the same Event repeats (a series)
# (operator/src/group.rs and auto.rs, Recorder::publish).
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- if .Values.rbac.hookJobs }}
# Job hooks: the hook's Job is read by name and created once per failover
# (engine/src/k8s/hooks.rs, ensure_job).
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["get", "create"]
{{- end }}
{{- if .Values.rbac.hookExec }}
# Exec hooks: the hook's Pods are listed by label (engine/src/k8s/hooks.rs, exec)...
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list"]
# ...and the command runs through the exec subresource over a WebSocket (hooks.rs,
# exec_in: kube's Api::exec): an HTTP GET, authorized as `get`; Kubernetes 1.35 and
# later also check `create` (feature gate AuthorizePodWebsocketUpgradeCreatePermission).
- apiGroups: [""]
  resources: ["pods/exec"]
  verbs: ["create", "get"]
{{- end }}
{{- end }}

{{/*
The Flux rules (also granted in rbac.fluxNamespaces: Flux objects may live outside the
group's namespace, engine/src/spec.rs FluxRef).
*/}}
{{- define "failover-operator.fluxRules" -}}
# Flux Kustomizations and HelmReleases are suspended and resumed (spec.suspend, and a
# reconcile request on resume: engine/src/k8s/flux.rs).
- apiGroups: ["kustomize.toolkit.fluxcd.io"]
  resources: ["kustomizations"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["helm.toolkit.fluxcd.io"]
  resources: ["helmreleases"]
  verbs: ["get", "list", "watch", "patch"]
{{- end }}

{{/*
The cluster's identity: the UID of the kube-system namespace, read once per group loop
(engine/src/k8s/mod.rs, KubeCluster::identity), unless clusterId is given.
*/}}
{{- define "failover-operator.identityRules" -}}
# This cluster's identity is the UID of the kube-system namespace, read by name
# (engine/src/k8s/mod.rs, KubeCluster::identity); no other namespace is read, and
# none is listed.
- apiGroups: [""]
  resources: ["namespaces"]
  resourceNames: ["kube-system"]
  verbs: ["get"]
{{- end }}
