#!/usr/bin/env bash
# Installs everything the optimizer and its tests need, idempotently:
#   - Debian packages: coinor-libcbc-dev (CBC solver), mesa-vulkan-drivers + libvulkan1 (headless wgpu),
#     chromium (the HTML report's headless-browser test)
#   - libonnxruntime.so 1.31.1 from the PyPI onnxruntime wheel, into .deps/onnxruntime/
#   - the onnx==1.23.2 wheel's backend test data, into .deps/onnx-data/
#   - the PP-OCRv4 det/rec/cls models from rapidocr-onnxruntime==1.4.4, into .deps/models/
#   - Python onnx==1.23.2 and onnxruntime==1.31.1 (the benchmark's baseline, quantize_static), into .deps/py/
#   - the PNG photographs of the scikit-image==0.26.0 wheel (real inputs for calibration/evaluation), into .deps/images/
#   - the model-family zoo and its inputs (scripts/zoo.sh), into .deps/zoo/
# Nothing fetched here is committed (.deps/ is in .gitignore).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
deps="$root/.deps"
mkdir -p "$deps/wheels"

say() { printf 'setup: %s\n' "$*" >&2; }

need_apt=()
for p in coinor-libcbc-dev mesa-vulkan-drivers libvulkan1 chromium time; do
  dpkg -s "$p" >/dev/null 2>&1 || need_apt+=("$p")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  say "installing Debian packages: ${need_apt[*]}"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# onnxruntime's StringNormalizer needs the en_US.UTF-8 locale (four corpus models use it).
if ! locale -a 2>/dev/null | grep -qi '^en_US.utf8$'; then
  say "generating the en_US.UTF-8 locale"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  dpkg -s locales >/dev/null 2>&1 || { $sudo_cmd apt-get update -qq; DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq locales >/dev/null; }
  $sudo_cmd sed -i 's/^# *en_US.UTF-8 UTF-8/en_US.UTF-8 UTF-8/' /etc/locale.gen
  grep -q '^en_US.UTF-8 UTF-8' /etc/locale.gen || echo 'en_US.UTF-8 UTF-8' | $sudo_cmd tee -a /etc/locale.gen >/dev/null
  $sudo_cmd locale-gen >/dev/null
fi

fetch_wheel() { # name==version -> path of the wheel
  local spec=$1 name=${1%%==*} ver=${1##*==}
  local pat="$deps/wheels/${name//-/_}-${ver}-*.whl"
  if ! compgen -G "$pat" >/dev/null; then
    say "downloading $spec"
    python3 -m pip download --no-deps --quiet --disable-pip-version-check "$spec" -d "$deps/wheels" >&2
  fi
  compgen -G "$pat" | head -n1
}

unzip_members() { # wheel prefix dest  (extract members under prefix, stripping it)
  python3 - "$@" <<'PY'
import os, sys, zipfile
wheel, prefix, dest = sys.argv[1:4]
with zipfile.ZipFile(wheel) as z:
    for info in z.infolist():
        if not info.filename.startswith(prefix) or info.is_dir():
            continue
        rest = info.filename[len(prefix):]
        out = os.path.join(dest, rest) if rest else dest
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with z.open(info) as src, open(out + ".part", "wb") as dst:
            dst.write(src.read())
        os.replace(out + ".part", out)
PY
}

ort_dir="$deps/onnxruntime"
if [ ! -f "$ort_dir/libonnxruntime.so.1.31.1" ]; then
  whl=$(fetch_wheel onnxruntime==1.31.1)
  say "extracting libonnxruntime.so.1.31.1"
  unzip_members "$whl" onnxruntime/capi/libonnxruntime.so.1.31.1 "$ort_dir/libonnxruntime.so.1.31.1"
  ln -sf libonnxruntime.so.1.31.1 "$ort_dir/libonnxruntime.so"
fi

data_dir="$deps/onnx-data"
if [ ! -f "$data_dir/.complete" ]; then
  whl=$(fetch_wheel onnx==1.23.2)
  say "extracting the onnx wheel's backend test data"
  rm -rf "$data_dir"
  for sub in light pytorch-converted pytorch-operator simple; do
    unzip_members "$whl" "onnx/backend/test/data/$sub/" "$data_dir/$sub/"
  done
  touch "$data_dir/.complete"
fi

model_dir="$deps/models"
if [ ! -f "$model_dir/.complete" ]; then
  whl=$(fetch_wheel rapidocr-onnxruntime==1.4.4)
  say "extracting the PP-OCRv4 models"
  for m in ch_PP-OCRv4_det_infer.onnx ch_PP-OCRv4_rec_infer.onnx ch_ppocr_mobile_v2.0_cls_infer.onnx; do
    unzip_members "$whl" "rapidocr_onnxruntime/models/$m" "$model_dir/$m"
  done
  touch "$model_dir/.complete"
fi

py_dir="$deps/py"
if [ ! -f "$py_dir/.complete" ]; then
  say "installing Python onnx==1.23.2 into .deps/py (benchmark baseline)"
  python3 -m pip install --quiet --disable-pip-version-check --target "$py_dir" onnx==1.23.2 >&2
  touch "$py_dir/.complete"
fi

# onnxruntime's own quantizer (quantize_static) is the baseline the precision benchmark compares against.
if [ ! -f "$py_dir/.complete-ort" ]; then
  say "installing Python onnxruntime==1.31.1 into .deps/py (quantize_static baseline)"
  # Packages already in the folder (onnx, numpy) are kept; pip only warns about them.
  python3 -m pip install --quiet --disable-pip-version-check --target "$py_dir" onnxruntime==1.31.1 onnx==1.23.2 >&2 2>/dev/null \
    || python3 -m pip install --quiet --disable-pip-version-check --target "$py_dir" onnxruntime==1.31.1 onnx==1.23.2 >&2
  PYTHONPATH="$py_dir" python3 -c "from onnxruntime.quantization import quantize_static" >&2
  touch "$py_dir/.complete-ort"
fi

# Real photographs (no text-image data set is installed): calibration and evaluation crops for the PP-OCR models.
img_dir="$deps/images"
if [ ! -f "$img_dir/.complete" ]; then
  whl=$(fetch_wheel scikit-image==0.26.0)
  say "extracting the scikit-image photographs into .deps/images"
  python3 - "$whl" "$img_dir" <<'PY'
import os, sys, zipfile
wheel, dest = sys.argv[1:3]
os.makedirs(dest, exist_ok=True)
with zipfile.ZipFile(wheel) as z:
    for info in z.infolist():
        name = info.filename
        if not (name.startswith("skimage/data/") and name.endswith(".png")) or "/" in name[len("skimage/data/"):]:
            continue
        out = os.path.join(dest, os.path.basename(name))
        with z.open(info) as src, open(out + ".part", "wb") as dst:
            dst.write(src.read())
        os.replace(out + ".part", out)
PY
  touch "$img_dir/.complete"
fi

# The model-family zoo (trained transformer, detection, recurrent, audio and control-flow models
# with real inputs; docs/zoo.md): fetched and prepared by its own idempotent script.
bash "$root/scripts/zoo.sh"
