#!/usr/bin/env bash
# The Helm chart deploy/helm/failover-operator, linted and rendered with Helm's own Go
# library (Helm 4, through the PyPI package helm-python-sdk, which wraps it as a C
# library): no helm binary, no cluster.
#
#   scripts/chart.sh lint [VALUES...] [--kube-version V] [--namespace NS] [--no-strict]
#       `helm lint --strict` of the chart once per values file in the chart's ci/
#       directory (chart-testing's convention), with VALUES on top; prints every finding
#       and exits 1 on any error or (strict, the default) warning
#   scripts/chart.sh render [VALUES...] [--namespace NS] [--release NAME]
#                           [--kube-version V] [--api-versions LIST]... [--include-crds]
#       `helm template`: the manifests on standard output, "---" and "# Source:" before
#       each, in Helm's install order (kind, then template path); the CRDs of crds/ first
#       with --include-crds. --kube-version is the Kubernetes version the templates see
#       (.Capabilities.KubeVersion; default Helm's own) and --api-versions adds API
#       versions to .Capabilities.APIVersions (comma-separated or repeated; Helm's built-in
#       list always stays, as with `helm template`). Release name default:
#       failover-operator; namespace default: default
#   scripts/chart.sh notes [VALUES...] [--namespace NS] [--release NAME]
#       the rendered NOTES.txt
#   scripts/chart.sh check-crds
#       exit 1 unless the chart's crds/crds.yaml is byte for byte deploy/crds/crds.yaml
#   scripts/chart.sh sync-crds
#       copy deploy/crds/crds.yaml into the chart (after regenerating it)
#   scripts/chart.sh setup
#       only install the Python environment (below)
#
# VALUES, in order, later ones winning (as with helm): --set k=v (Helm's --set syntax),
# --set-string k=v, -f/--values FILE.
#
# Output is deterministic: the same chart and values give the same bytes.
#
# The Python environment: a venv with helm-python-sdk (the version sdk_version pins
# below) from PyPI, whose wheel bundles libhelm_c (Helm's Go SDK as a C library, about
# 75 MB); made once under ${FAILOVER_CACHE_DIR:-~/.cache/failover-rs}/helm-venv and
# reused. Needs python3 with its venv module (Debian: python3-venv), and PyPI the first
# time.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
chart="$root/deploy/helm/failover-operator"
sdk_version="0.2.2"
cache="${FAILOVER_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/failover-rs}"
venv="$cache/helm-venv"

die() {
    echo "chart: $*" >&2
    exit 1
}

# Make the venv unless it holds this version of the SDK; one process at a time (tests
# run this script in parallel).
setup() {
    local stamp="$venv/.helm-python-sdk-$sdk_version"
    [[ -f "$stamp" ]] && return 0
    mkdir -p "$cache"
    exec 9>"$cache/helm-venv.lock"
    flock 9
    if [[ ! -f "$stamp" ]]; then
        echo "chart: installing helm-python-sdk $sdk_version into $venv (once)" >&2
        rm -rf "$venv"
        python3 -m venv "$venv" >&2 ||
            die "cannot make a Python venv (Debian: apt-get install python3-venv)"
        "$venv/bin/pip" install --quiet --disable-pip-version-check \
            "helm-python-sdk==$sdk_version" >&2 ||
            die "cannot install helm-python-sdk $sdk_version from PyPI"
        touch "$stamp"
    fi
    flock -u 9
    exec 9>&-
}

case "${1:-}" in
    check-crds)
        cmp -s "$root/deploy/crds/crds.yaml" "$chart/crds/crds.yaml" ||
            die "deploy/helm/failover-operator/crds/crds.yaml differs from deploy/crds/crds.yaml: run scripts/chart.sh sync-crds"
        exit 0
        ;;
    sync-crds)
        cp "$root/deploy/crds/crds.yaml" "$chart/crds/crds.yaml"
        exit 0
        ;;
    setup)
        setup
        exit 0
        ;;
    lint | render | notes) ;;
    *)
        sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2
        exit 2
        ;;
esac

setup
exec "$venv/bin/python" - "$chart" "$sdk_version" "$@" <<'PY'
import argparse
import json
import re
import sys
from pathlib import Path

import helm_python as helm
from helm_python import _native

chart_dir = Path(sys.argv[1])
sdk_version = sys.argv[2]
args = sys.argv[3:]

# Helm's install order (pkg/release/v1/util/kind_sorter.go, InstallOrder); other kinds
# follow, by kind.
INSTALL_ORDER = [
    "PriorityClass", "Namespace", "NetworkPolicy", "ResourceQuota", "LimitRange",
    "PodSecurityPolicy", "PodDisruptionBudget", "ServiceAccount", "Secret", "SecretList",
    "ConfigMap", "StorageClass", "PersistentVolume", "PersistentVolumeClaim",
    "CustomResourceDefinition", "ClusterRole", "ClusterRoleList", "ClusterRoleBinding",
    "ClusterRoleBindingList", "Role", "RoleList", "RoleBinding", "RoleBindingList",
    "Service", "DaemonSet", "Pod", "ReplicationController", "ReplicaSet", "Deployment",
    "HorizontalPodAutoscaler", "StatefulSet", "Job", "CronJob", "IngressClass", "Ingress",
    "APIService", "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration",
]


def fail(message: str) -> None:
    print(f"chart: {message}", file=sys.stderr)
    sys.exit(1)


def merge(base: dict, top: dict) -> dict:
    """Helm's coalescing of two values maps: maps merge, anything else is replaced."""
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="scripts/chart.sh " + argv[0])
    p.add_argument("command")

    class Values(argparse.Action):
        """Keeps every values option in command-line order."""

        def __call__(self, parser, namespace, value, option=None):
            namespace.values.append((self.dest, value))

    p.set_defaults(values=[])
    p.add_argument("--set", dest="set", action=Values, metavar="K=V")
    p.add_argument("--set-string", dest="set_string", action=Values, metavar="K=V")
    p.add_argument("-f", "--values", dest="file", action=Values, metavar="FILE")
    p.add_argument("--namespace", "-n", default="default")
    p.add_argument("--release", default="failover-operator")
    p.add_argument("--kube-version", default=None)
    p.add_argument("--api-versions", action="append", default=[])
    p.add_argument("--include-crds", action="store_true")
    p.add_argument("--no-strict", action="store_true")
    return p.parse_args(argv)


def user_values(options: list[tuple[str, str]]) -> dict:
    values: dict = {}
    for kind, value in options:
        try:
            if kind == "set":
                layer = helm.parse_set_string(value)
            elif kind == "set_string":
                layer = helm.parse_set_string_values(value)
            else:
                layer = helm.values_from_yaml(Path(value).read_text()) or {}
        except (helm.HelmError, OSError) as e:
            fail(f"{kind.replace('_', '-')} {value}: {e}")
        values = merge(values, layer)
    return values


def kube_version_allowed(constraint: str, version: str) -> bool:
    """Chart.yaml's kubeVersion, for the `>=X.Y.Z[-0]` constraints this chart uses."""
    m = re.fullmatch(r">=\s*v?(\d+)\.(\d+)\.(\d+)(-0)?", constraint.strip())
    v = re.match(r"v?(\d+)\.(\d+)(?:\.(\d+))?", version)
    if not m or not v:
        return True
    want = tuple(int(x) for x in m.group(1, 2, 3))
    have = (int(v.group(1)), int(v.group(2)), int(v.group(3) or 0))
    return have >= want


def documents(text: str) -> list[str]:
    """The YAML documents of a manifest, without empty ones (Helm's SplitManifests)."""
    docs = re.split(r"(?m)^---[ \t]*$", text)
    out = []
    for doc in docs:
        doc = doc.strip("\n").rstrip()
        meaningful = [
            line for line in doc.splitlines() if line.strip() and not line.lstrip().startswith("#")
        ]
        if meaningful:
            out.append(doc)
    return out


def kind_of(doc: str) -> str:
    m = re.search(r"(?m)^kind:[ \t]*['\"]?([A-Za-z0-9]+)", doc)
    return m.group(1) if m else ""


def order(kind: str) -> tuple[int, str]:
    if kind in INSTALL_ORDER:
        return (INSTALL_ORDER.index(kind), "")
    return (len(INSTALL_ORDER), kind)


def render(opts: argparse.Namespace, values: dict) -> dict[str, str]:
    render_opts: dict = {"name": opts.release, "namespace": opts.namespace}
    if opts.kube_version:
        render_opts["kube_version"] = opts.kube_version
    api_versions = [v for arg in opts.api_versions for v in arg.split(",") if v.strip()]
    if api_versions:
        render_opts["api_versions"] = sorted(set(v.strip() for v in api_versions))
    with helm.Chart.load(chart_dir) as chart:
        constraint = chart.metadata.get("kubeVersion")
        if constraint and opts.kube_version and not kube_version_allowed(constraint, opts.kube_version):
            fail(f"chart requires kubeVersion: {constraint} which is incompatible with Kubernetes {opts.kube_version}")
        try:
            # helm_render's options (libhelm_c): name, namespace, revision, is_install,
            # is_upgrade, kube_version, api_versions. helm-python-sdk's Chart.render does
            # not pass the last two, hence the direct call; the library refuses options it
            # does not know.
            out = _native.call_string(
                "helm_render", chart._raw(), json.dumps(values), json.dumps(render_opts)
            )
        except helm.HelmError as e:
            fail(f"rendering the chart failed: {e}")
        manifests: dict[str, str] = json.loads(out)
        if opts.include_crds:
            for crd in sorted(chart.crds, key=lambda c: c["filename"]):
                manifests[f"{chart.name}/{crd['filename']}"] = crd["data"]
    return manifests


def main() -> None:
    opts = parse(args)
    if helm.helm_c_version() != sdk_version:
        fail(f"libhelm_c {helm.helm_c_version()} is not the pinned {sdk_version}")
    values = user_values(opts.values)
    if opts.command == "lint":
        ci = sorted((chart_dir / "ci").glob("*-values.yaml"))
        runs = [(f.name, merge(helm.values_from_yaml(f.read_text()) or {}, values)) for f in ci]
        if not runs:
            runs = [("(no ci values)", values)]
        bad = 0
        severities = {0: "UNKNOWN", 1: "INFO", 2: "WARNING", 3: "ERROR"}
        for name, run_values in runs:
            report = helm.lint(
                chart_dir,
                run_values,
                strict=not opts.no_strict,
                namespace=opts.namespace,
                kube_version=opts.kube_version,
            )
            print(f"==> Linting {chart_dir.name} with {name}")
            for m in report["messages"]:
                severity = m["severity"]
                print(f"[{severities.get(severity, severity)}] {m['path']}: {m['error'].strip()}")
                if severity >= 3 or (severity == 2 and not opts.no_strict):
                    bad += 1
            if not report["messages"]:
                print("no findings")
        print(f"{len(runs)} values file(s) linted, {bad} error(s)/warning(s)")
        sys.exit(1 if bad else 0)
    manifests = render(opts, values)
    if opts.command == "notes":
        notes = [text for path, text in manifests.items() if path.endswith("/templates/NOTES.txt")]
        sys.stdout.write(notes[0] if notes else "")
        return
    docs = []
    for path, text in manifests.items():
        name = path.rsplit("/", 1)[-1]
        if name == "NOTES.txt" or name.startswith("_"):
            continue
        is_crd = "/crds/" in f"/{path}"
        for i, doc in enumerate(documents(text)):
            kind = kind_of(doc)
            key = (0 if is_crd else 1, order(kind), path, i)
            docs.append((key, path, doc))
    docs.sort(key=lambda d: d[0])
    out = sys.stdout
    for _, path, doc in docs:
        out.write(f"---\n# Source: {path}\n{doc}\n")


main()
PY
