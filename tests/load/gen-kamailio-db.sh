#!/usr/bin/env bash
# Writes the db_text table `dir` that tests/load/kamailio.cfg loads into its htable:
# alice and carol (DN 1001, 1002), failover test entries, and every URI of a directory CSV
# written by `ils-edge generate-directory` (or, without one, userNNNNN@DOMAIN for COUNT users).
#   gen-kamailio-db.sh OUT_DIR [DIRECTORY_CSV | COUNT] [DOMAIN]
set -euo pipefail
out=$1; src=${2:-100000}; domain=${3:-hq.example.com}
mkdir -p "$out"
{
    echo "id(int,auto) key_name(str) key_type(int) value_type(int) key_value(str) expires(int)"
    printf '1:alice@hq.example.com:0:0:1001:0\n2:carol@hq.example.com:0:0:1002:0\n'
    printf '3:failover@hq.example.com:0:0:F1001:0\n4:unreachable@hq.example.com:0:0:U1001:0\n'
    if [[ -f $src ]]; then
        # CSV rows: uri,partition,directory number,advertise (comments and header skipped).
        awk -F, '!/^#/ && $1 ~ /@/ { n++; printf "%d:%s:0:0:%s:0\n", n + 10, $1, $3 }' "$src"
    else
        awk -v c="$src" -v d="$domain" 'BEGIN { for (i = 0; i < c; i++) printf "%d:user%05d@%s:0:0:%d:0\n", i + 10, i, d, 100000 + i }'
    fi
} > "$out/dir"
echo "$out/dir: $(($(wc -l < "$out/dir") - 1)) entries" >&2
