#!/usr/bin/env bash
# Writes a corpus of at least WORDS words (default 1,000,000) for the
# bounded-memory check (configs/scale-wsj-1m.yaml): the canonical WSJ train
# split repeated until it is that long. The repetition is said in every
# report of that config; no new text is made up.
#
#   scripts/make-scale-corpus.sh [WORDS] [OUT]
set -euo pipefail
cd "$(dirname "$0")/.."
words=${1:-1000000}
out=${2:-runs/scale/train-1m.txt}
source=assets/wsj/train.txt
if [[ ! -s $source ]]; then
    echo "error: $source is missing; run scripts/fetch-assets.sh wsj first" >&2
    exit 1
fi
per_copy=$(wc -w < "$source")
copies=$(( (words + per_copy - 1) / per_copy ))
mkdir -p "$(dirname "$out")"
tmp="$out.tmp.$$"
for _ in $(seq "$copies"); do cat "$source"; done > "$tmp"
mv "$tmp" "$out"
echo "$out: $copies copies of $source, $(wc -w < "$out") words, $(wc -l < "$out") sentences"
