#!/usr/bin/env bash
# Lints the container and delivery files, which no Docker engine here can build or run:
#
#   Dockerfile.cuda, .devcontainer/Dockerfile   hadolint (its rules plus ShellCheck on RUN lines)
#   docker-compose.yaml                         the compose-spec JSON schema (check-jsonschema's
#                                               vendored copy), then what the schema cannot see:
#                                               depends_on and named volumes point at something
#                                               defined, and every `--flag` given to a tabtune
#                                               command exists in crates/cli/src/cli.rs
#   .github/workflows/*.yml                     SchemaStore's github-workflows schema, and
#                                               actionlint (expressions, job graph, action inputs,
#                                               deprecated action runtimes, ShellCheck on `run:`)
#   .devcontainer/devcontainer.json             parses as JSONC; the keys the GPU setup relies on
#   .ci/run, scripts/*.sh (this one too)        ShellCheck
#
# The linters come pinned from scripts/requirements-lint.txt through scripts/py-env.sh. When they
# cannot be installed the script fails under CI=true and skips with a warning elsewhere. Every
# check runs; the exit code is 1 when any of them failed.
#
#   scripts/lint-containers.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"

if ! python="$(scripts/py-env.sh lint)"; then
  if [ "${CI:-}" = "true" ]; then
    echo "lint-containers: could not install the linters (scripts/requirements-lint.txt); CI needs them" >&2
    exit 1
  fi
  echo "lint-containers: WARNING: linters not installed (scripts/py-env.sh lint failed); nothing was checked" >&2
  exit 0
fi
bin="$(dirname "$python")"
for tool in hadolint check-jsonschema actionlint shellcheck; do
  if [ ! -x "$bin/$tool" ]; then
    echo "lint-containers: $tool is missing from $bin (scripts/requirements-lint.txt)" >&2
    exit 1
  fi
done
# actionlint runs ShellCheck on `run:` blocks when it finds it on the PATH.
export PATH="$bin:$PATH"

failed=()
check() {
  local what="$1"
  shift
  if "$@"; then
    echo "lint-containers: ok: $what"
  else
    echo "lint-containers: FAILED: $what" >&2
    failed+=("$what")
  fi
}

need() {
  if [ ! -f "$1" ]; then
    echo "lint-containers: $1 does not exist" >&2
    failed+=("$1 exists")
    return 1
  fi
}

for f in Dockerfile.cuda .devcontainer/Dockerfile; do
  need "$f" && check "hadolint $f" hadolint --no-color --failure-threshold style "$f"
done

if need docker-compose.yaml; then
  check "docker-compose.yaml: compose-spec schema" \
    check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yaml
  check "docker-compose.yaml: references and tabtune flags" "$python" - docker-compose.yaml crates/cli/src/cli.rs <<'PY'
import re
import sys

from ruamel.yaml import YAML

path, cli_path = sys.argv[1], sys.argv[2]
doc = YAML(typ="safe").load(open(path, encoding="utf-8"))
cli = open(cli_path, encoding="utf-8").read()
errors = []
services = doc.get("services") or {}
volumes = set((doc.get("volumes") or {}).keys())
if not services:
    errors.append("no services")
for name, svc in services.items():
    deps = svc.get("depends_on") or []
    for dep in deps if isinstance(deps, list) else deps.keys():
        if dep not in services:
            errors.append(f"services.{name}.depends_on: no service `{dep}`")
    for vol in svc.get("volumes") or []:
        source = vol.get("source") if isinstance(vol, dict) else vol.split(":", 1)[0]
        if source and not source.startswith(("/", ".", "$", "~")) and source not in volumes:
            errors.append(f"services.{name}.volumes: named volume `{source}` is not declared under volumes:")
    # A tabtune command: the image's entrypoint is `tabtune`, so the command is its arguments.
    command = svc.get("command")
    if "tabtune" in str(svc.get("image", "")) and isinstance(command, list) and command:
        for arg in command[1:]:
            m = re.match(r"--([a-z][a-z0-9-]*)", str(arg))
            if m and not re.search(rf"\bpub {m.group(1).replace('-', '_')}:", cli):
                errors.append(f"services.{name}.command: `tabtune {command[0]}` has no flag --{m.group(1)} ({cli_path})")
for e in errors:
    print(f"{path}: {e}", file=sys.stderr)
sys.exit(1 if errors else 0)
PY
fi

shopt -s nullglob
workflows=(.github/workflows/*.yml .github/workflows/*.yaml)
shopt -u nullglob
if [ "${#workflows[@]}" -eq 0 ]; then
  echo "lint-containers: no workflow files under .github/workflows" >&2
  failed+=(".github/workflows")
else
  check "workflows: github-workflows schema" \
    check-jsonschema --builtin-schema vendor.github-workflows "${workflows[@]}"
  # An action pinned to a commit names its tag in a comment (`@<sha> # v7.0.1`)...
  # shellcheck disable=SC2016 # $@ belongs to the inner bash
  check "workflows: every commit pin names its tag" \
    bash -c '! grep -nE "uses:[[:space:]]*[^[:space:]]+@[0-9a-f]{40}[[:space:]]*$" "$@"' _ "${workflows[@]}"
  # ... which actionlint needs: it knows the inputs and runtimes of popular actions by major tag
  # (@v7), not by commit. It checks a copy in which each pin reads as the major tag of its comment
  # (same lines; the file names in its messages are those of the real files).
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  for f in "${workflows[@]}"; do
    mkdir -p "$tmp/$(dirname "$f")"
    sed -E 's/@[0-9a-f]{40}([[:space:]]+)#[[:space:]]*(v[0-9]+)/@\2\1# \2/' "$f" >"$tmp/$f"
  done
  # shellcheck disable=SC2016 # $1 and $@ belong to the inner bash
  check "workflows: actionlint" bash -c 'cd "$1" && shift && actionlint -no-color "$@"' _ "$tmp" "${workflows[@]}"
fi

if need .devcontainer/devcontainer.json; then
  check ".devcontainer/devcontainer.json: JSONC and the GPU keys" "$python" - \
    .devcontainer/devcontainer.json crates/cli/src/cli.rs <<'PY'
import json
import os
import re
import sys

path, cli_path = sys.argv[1], sys.argv[2]
text = open(path, encoding="utf-8").read()


def strip_comments(s):
    """JSONC as the devcontainer spec allows it: // and /* */ comments (trailing commas are not)."""
    out, i, in_str = [], 0, False
    while i < len(s):
        c = s[i]
        if in_str:
            out.append(c)
            if c == "\\":
                out.append(s[i + 1])
                i += 2
                continue
            in_str = c != '"'
            i += 1
        elif c == '"':
            in_str = True
            out.append(c)
            i += 1
        elif s.startswith("//", i):
            while i < len(s) and s[i] != "\n":
                i += 1
        elif s.startswith("/*", i):
            end = s.find("*/", i + 2)
            if end < 0:
                raise ValueError("unterminated /* comment")
            out.append("\n" * s.count("\n", i, end))
            i = end + 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


try:
    cfg = json.loads(strip_comments(text))
except (ValueError, IndexError) as e:
    print(f"{path}: not valid JSON with comments: {e}", file=sys.stderr)
    sys.exit(1)
errors = []
if not isinstance(cfg, dict):
    errors.append("the top level is not an object")
    cfg = {}
if not isinstance(cfg.get("name"), str) or not cfg["name"]:
    errors.append("`name` (a string) is missing")
build = cfg.get("build")
if not isinstance(build, dict) or not isinstance(build.get("dockerfile"), str):
    errors.append("`build.dockerfile` is missing")
else:
    dockerfile = os.path.join(os.path.dirname(path), build["dockerfile"])
    if not os.path.isfile(dockerfile):
        errors.append(f"build.dockerfile: {dockerfile} does not exist")
gpu = (cfg.get("hostRequirements") or {}).get("gpu")
run_args = cfg.get("runArgs") or []
if not isinstance(run_args, list) or not all(isinstance(a, str) for a in run_args):
    errors.append("`runArgs` must be a list of strings")
    run_args = []
if gpu not in (True, "optional") and not isinstance(gpu, dict) and not any(a.startswith("--gpus") for a in run_args):
    errors.append("no GPU: set hostRequirements.gpu (true, \"optional\" or an object) or --gpus in runArgs")
if gpu and any(a.startswith("--gpus") for a in run_args):
    errors.append("hostRequirements.gpu already adds --gpus all; runArgs would pass it twice")
user = cfg.get("remoteUser") or cfg.get("containerUser")
if not isinstance(user, str) or user in ("", "root"):
    errors.append("`remoteUser` must name a non-root user")
post = cfg.get("postCreateCommand")
post_text = json.dumps(post) if post is not None else ""
if "cargo build" not in post_text or "--features cuda" not in post_text:
    errors.append("`postCreateCommand` must build tabtune with --features cuda")
m = re.search(r"pub struct ServeArgs.*?default_value_t = (\d+), env = \"TABTUNE_PORT\"", open(cli_path, encoding="utf-8").read(), re.S)
if not m:
    errors.append(f"cannot find `tabtune serve`'s default port in {cli_path}")
elif int(m.group(1)) not in (cfg.get("forwardPorts") or []):
    errors.append(f"`forwardPorts` does not include tabtune serve's default port {m.group(1)}")
for e in errors:
    print(f"{path}: {e}", file=sys.stderr)
sys.exit(1 if errors else 0)
PY
fi

check "shellcheck .ci/run scripts/*.sh" shellcheck .ci/run scripts/*.sh

if [ "${#failed[@]}" -gt 0 ]; then
  echo "lint-containers: ${#failed[@]} check(s) failed in $root: ${failed[*]}" >&2
  exit 1
fi
echo "lint-containers: all container files pass"
