#!/bin/bash
# test-catalog.sh — the journald catalog parses, and its MESSAGE_IDs are exactly those of
# engine/event-ids.h (none missing, none extra, no duplicates); the README lists each one.
# Works in a temporary --root directory only: never touches the host's catalog database.
# usage: test-catalog.sh SOURCE_ROOT
set -euo pipefail

SRC=${1:?usage: test-catalog.sh SOURCE_ROOT}
HEADER="$SRC/engine/event-ids.h"
CATALOG="$SRC/packaging/retentiond.catalog"
README="$SRC/README.md"
fail=0
err() { echo "FAIL: $*" >&2; fail=1; }

command -v journalctl >/dev/null || { echo "SKIP: journalctl not installed"; exit 77; }

ROOT=$(mktemp -d)
trap 'rm -rf "$ROOT"' EXIT
mkdir -p "$ROOT/usr/lib/systemd/catalog"
cp "$CATALOG" "$ROOT/usr/lib/systemd/catalog/"

# 1. journalctl parses it (a malformed file exits 1).
if ! journalctl --root="$ROOT" --update-catalog; then
        err "journalctl --update-catalog rejected $CATALOG"
fi

# 2. The ID sets. Every define in the header must be a 32-lowercase-hex string literal.
grep -E '^#define RETENTIOND_MESSAGE_' "$HEADER" >"$ROOT/defines"
n_defines=$(wc -l <"$ROOT/defines")
sed -nE 's/^#define RETENTIOND_MESSAGE_[A-Z0-9_]+ +"([0-9a-f]{32})"$/\1/p' "$ROOT/defines" >"$ROOT/header-ids"
if [ "$(wc -l <"$ROOT/header-ids")" -ne "$n_defines" ]; then
        err "event-ids.h has defines that are not 32 lowercase hex string literals:"
        grep -vE '"[0-9a-f]{32}"$' "$ROOT/defines" >&2 || true
fi
[ "$n_defines" -gt 0 ] || err "no MESSAGE_IDs found in $HEADER"
sed -nE 's/^-- ([0-9a-fA-F]+)[[:space:]]*$/\1/p' "$CATALOG" >"$ROOT/catalog-ids"
if grep -E '^-- ' "$CATALOG" | grep -vqE '^-- [0-9a-f]{32}$'; then
        err "catalog entry headers that are not '-- <32 lowercase hex>':"
        grep -E '^-- ' "$CATALOG" | grep -vE '^-- [0-9a-f]{32}$' >&2
fi

for f in header-ids catalog-ids; do
        dups=$(sort "$ROOT/$f" | uniq -d)
        [ -z "$dups" ] || err "duplicate IDs in $f: $dups"
done
missing=$(comm -23 <(sort -u "$ROOT/header-ids") <(sort -u "$ROOT/catalog-ids"))
extra=$(comm -13 <(sort -u "$ROOT/header-ids") <(sort -u "$ROOT/catalog-ids"))
[ -z "$missing" ] || err "IDs in event-ids.h without a catalog entry: $missing"
[ -z "$extra" ] || err "catalog entries for IDs not in event-ids.h: $extra"

# 3. journalctl knows every entry, with our Subject/Defined-By/Documentation.
listed=$(journalctl --root="$ROOT" --list-catalog --no-pager | awk '{print $1}' | sort)
[ "$listed" = "$(sort -u "$ROOT/header-ids")" ] || err "journalctl --list-catalog does not list exactly the header's IDs"
while read -r id; do
        entry=$(journalctl --root="$ROOT" --dump-catalog "$id" --no-pager 2>&1) || { err "--dump-catalog $id failed"; continue; }
        grep -q '^Subject: .' <<<"$entry" || err "$id: no Subject"
        grep -qx 'Defined-By: retentiond' <<<"$entry" || err "$id: no 'Defined-By: retentiond'"
        grep -qx 'Documentation: man:retentiond(8)' <<<"$entry" || err "$id: no 'Documentation: man:retentiond(8)'"
        grep -q '^Support: .' <<<"$entry" || err "$id: no Support"
        [ "$(grep -cvE '^(--|[A-Za-z-]+:|$)' <<<"$entry")" -ge 2 ] || err "$id: no explanation text"
done <"$ROOT/header-ids"

# 4. The README's Monitoring section lists every MESSAGE_ID.
if [ -f "$README" ]; then
        while read -r id; do
                grep -q "$id" "$README" || err "README.md does not list MESSAGE_ID $id"
        done <"$ROOT/header-ids"
else
        err "README.md missing"
fi

# 5. A catalog entry substitutes only fields that its event always carries, as listed in the
#    README's event table: journalctl shows a missing field as its bare name, without error, so
#    "@ROWS_SKIPPED@ rows" would read "ROWS_SKIPPED rows".
if [ -f "$README" ]; then
        python3 - "$CATALOG" "$README" <<'PY' || fail=1
import re, sys
catalog, readme = open(sys.argv[1]).read(), open(sys.argv[2]).read()
fields = {}
for m in re.finditer(r"^\| ([a-z-]+) \| `([0-9a-f]{32})` \| \w+ \| ([^|]*) \|", readme, re.M):
    fields[m.group(2)] = {x.strip() for x in m.group(3).split(",")} - {"", "—"}
bad = []
for entry in re.split(r"^-- ", catalog, flags=re.M)[1:]:
    mid = entry[:32]
    used = set(re.findall(r"@([A-Za-z0-9_]+)@", entry))
    if mid not in fields:
        bad.append(f"{mid}: no row in the README's event table")
    elif used - fields[mid]:
        bad.append(f"{mid}: catalog uses {sorted(used - fields[mid])}, not in its README fields {sorted(fields[mid])}")
for b in bad:
    print("FAIL: " + b, file=sys.stderr)
sys.exit(1 if bad else 0)
PY
fi

[ $fail -eq 0 ] || exit 1
echo "ok: $(wc -l <"$ROOT/header-ids") MESSAGE_IDs, catalog and header agree"
