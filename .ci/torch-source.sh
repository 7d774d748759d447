# Sourced by .ci/run: decide, and print, where tox's environments get torch from.
#
# PyPI's Linux wheel of torch (the pin in tox.ini) depends on CUDA packages (several GB); the suite runs
# on the CPU build. uv (tox-uv) reads no pip configuration, so a find-links folder that pip knows (this
# machine's: /etc/pip.conf, ~/.config/pip/pip.conf or $PIP_FIND_LINKS) is handed to uv as UV_FIND_LINKS
# (comma-separated), and tox passes every UV_* variable on. In order:
#   1. a PyTorch CPU index already in UV_INDEX / UV_EXTRA_INDEX_URL / UV_DEFAULT_INDEX / UV_INDEX_URL;
#   2. a find-links folder (UV_FIND_LINKS, else PIP_FIND_LINKS, else pip's global.find-links) holding
#      torch-<pin>+cpu: exported as UV_FIND_LINKS;
#   3. no find-links at all: the PyTorch CPU index, exported as UV_EXTRA_INDEX_URL;
#   4. find-links without the CPU wheel: stop (uv would fall back to PyPI's CUDA build), unless
#      CI_ALLOW_ANY_TORCH=1.
CPU_INDEX="https://download.pytorch.org/whl/cpu"
TORCH_PIN="$(sed -n 's/^ *torch: torch==\([0-9][0-9.]*\) *$/\1/p' tox.ini | head -n 1)"
if [ -z "$TORCH_PIN" ]; then
  echo "error: .ci/torch-source.sh: no 'torch: torch==X.Y.Z' pin found in tox.ini" >&2
  exit 2
fi

torch_source() {
  local indexes="${UV_INDEX:-} ${UV_EXTRA_INDEX_URL:-} ${UV_DEFAULT_INDEX:-} ${UV_INDEX_URL:-}"
  case "$indexes" in
    *download.pytorch.org/whl/cpu*)
      echo "torch source: the PyTorch CPU index, from the UV_* index variables ($(echo $indexes))"
      return 0 ;;
  esac
  local links="${UV_FIND_LINKS:-${PIP_FIND_LINKS:-}}"
  local origin="${UV_FIND_LINKS:+UV_FIND_LINKS}"
  origin="${origin:-${PIP_FIND_LINKS:+PIP_FIND_LINKS}}"
  if [ -z "$links" ]; then
    links="$(python3 -m pip config get global.find-links 2>/dev/null || true)"
    origin="pip config global.find-links"
  fi
  if [ -z "$links" ]; then
    export UV_EXTRA_INDEX_URL="$CPU_INDEX"
    echo "torch source: the PyTorch CPU index $CPU_INDEX (no find-links configured; exported UV_EXTRA_INDEX_URL)"
    return 0
  fi
  local link wheel
  for link in $(echo "$links" | tr ',' ' '); do
    for wheel in "${link#file://}"/torch-"$TORCH_PIN"+cpu-*.whl; do
      if [ -f "$wheel" ]; then
        UV_FIND_LINKS="$(echo $links | tr ' ' ',')"
        export UV_FIND_LINKS
        echo "torch source: $wheel (find-links from $origin; exported UV_FIND_LINKS=$UV_FIND_LINKS)"
        return 0
      fi
    done
  done
  if [ "${CI_ALLOW_ANY_TORCH:-}" = "1" ]; then
    echo "torch source: whatever uv resolves for torch==$TORCH_PIN (CI_ALLOW_ANY_TORCH=1; find-links $links)"
    return 0
  fi
  echo "error: no CPU build of torch==$TORCH_PIN: the find-links ($links, from $origin) hold no" \
       "torch-$TORCH_PIN+cpu wheel, so uv would install PyPI's CUDA build (several GB). Put the CPU wheel" \
       "there, or set UV_EXTRA_INDEX_URL=$CPU_INDEX, or CI_ALLOW_ANY_TORCH=1 to take what uv finds." >&2
  return 1
}
