#!/usr/bin/env bash
# 405_report_chromium: popsell.compliance_report() renders in a browser.
# Headless Chromium (Debian's chromium, installed by tools/test) opens the
# report of a small brand: the screenshot is not blank and the page logs no
# console error.  Two control pages prove the checks can fail: a blank page
# counts as blank, a page with a script error logs a console error.
set -euo pipefail
# shellcheck source=test/scripts/lib.sh
source "$(dirname "$0")/lib.sh"

tmp="${POPSELL_TEST_TMP:?}"
browser=$(command -v chromium || command -v chromium-browser || true)
[ -n "$browser" ] || fail "chromium is not installed (tools/test installs Debian's chromium)"

db=popsell_report_405
fresh_db "$db"
q "$db" 'CREATE EXTENSION popsell CASCADE' >/dev/null
# A small brand: contacts from three sources, invitations and answers,
# two retention runs and a rights request.
q "$db" "
INSERT INTO popsell.ambassadors (id, status, terms_accepted_at, first_name, email, password_hash)
VALUES (1, 'active', now(), 'Amb', 'amb405@example.test', '\$2a\$04\$' || repeat('a', 53));
INSERT INTO popsell.contacts (ambassador_id, source, first_name, email)
SELECT 1, 'crm_manual', 'C' || g, 'c405-' || g || '@example.test' FROM generate_series(1, 40) g;
SELECT count(popsell.send_invitation(id)) FROM popsell.contacts WHERE id % 2 = 0;
SELECT count(popsell.accept_invitation(id)) FROM popsell.contacts WHERE id % 4 = 0;
SELECT count(popsell.collect_contact(1, 'order', jsonb_build_object('email', 'o405-' || g || '@example.test'),
                                     NULL, true)) FROM generate_series(1, 25) g;
SELECT count(popsell.collect_contact(1, 'blog', jsonb_build_object('email', 'b405-' || g || '@example.test'),
                                     true, true)) FROM generate_series(1, 15) g;
SELECT count(*) FROM popsell.run_maintenance(now());
SELECT count(*) FROM popsell.run_maintenance(now() + interval '20 days');
SELECT popsell.subject_access('o405-1@example.test') IS NOT NULL;
" >/dev/null
q "$db" "SELECT popsell.compliance_report(now() + interval '20 days')" >"$tmp/report.html"
[ -s "$tmp/report.html" ] || fail "the report is empty"
printf '<!DOCTYPE html><html><head><title>blank</title></head><body></body></html>\n' >"$tmp/blank.html"
printf '<!DOCTYPE html><html><body><p>x</p><script>thisFunctionDoesNotExist();</script></body></html>\n' \
	>"$tmp/error.html"

# shoot NAME W,H: screenshot of $tmp/NAME.html into $tmp/NAME.png, browser log
# into $tmp/NAME.log (a fresh profile each time).
shoot() {
	local name="$1" size="$2"
	rm -rf "$tmp/profile-$name"
	timeout 60 "$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
		--disable-background-networking --disable-component-update --disable-sync \
		--user-data-dir="$tmp/profile-$name" --enable-logging=stderr --v=0 \
		--hide-scrollbars --window-size="$size" \
		--screenshot="$tmp/$name.png" "file://$tmp/$name.html" >"$tmp/$name.log" 2>&1 ||
		fail "chromium failed on $name.html: $(tail -n 5 "$tmp/$name.log")"
	[ -s "$tmp/$name.png" ] || fail "no screenshot of $name.html"
}

# Console messages (errors, uncaught exceptions) as Chromium logs them.
console_errors() {
	grep -E 'CONSOLE|Uncaught|ERROR:.*(console|javascript)' "$1" || true
}

# Share of pixels that are not (near) white, in per mille, from the PNG
# itself (Python's standard library only: zlib and struct).
ink() {
	python3 - "$1" <<'EOF'
import struct, sys, zlib
data = open(sys.argv[1], 'rb').read()
assert data[:8] == b'\x89PNG\r\n\x1a\n', 'not a PNG'
pos, idat, w = 8, b'', None
while pos < len(data):
    n, kind = struct.unpack('>I4s', data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + n]
    if kind == b'IHDR':
        w, h, depth, ctype = struct.unpack('>IIBB', body[:10])
        assert depth == 8 and ctype in (2, 6), 'unexpected PNG format'
        bpp = 3 if ctype == 2 else 4
    elif kind == b'IDAT':
        idat += body
    pos += 12 + n
raw = zlib.decompress(idat)
stride = w * bpp
prev = bytearray(stride)
ink = 0
i = 0
for _ in range(h):
    f = raw[i]
    line = bytearray(raw[i + 1:i + 1 + stride])
    i += 1 + stride
    if f == 2:
        line = bytearray((u + v) & 255 for u, v in zip(line, prev))
    for x in (range(stride) if f in (1, 3, 4) else ()):
        a = line[x - bpp] if x >= bpp else 0
        b = prev[x]
        c = prev[x - bpp] if x >= bpp else 0
        if f == 1:
            line[x] = (line[x] + a) & 255
        elif f == 2:
            line[x] = (line[x] + b) & 255
        elif f == 3:
            line[x] = (line[x] + (a + b) // 2) & 255
        elif f == 4:
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    for x in range(0, stride, bpp):
        if min(line[x], line[x + 1], line[x + 2]) < 235:
            ink += 1
    prev = line
print(ink * 1000 // (w * h))
EOF
}

shoot blank 300,300
shoot error 300,300
shoot report 1000,1200

# the checks can fail
[ "$(ink "$tmp/blank.png")" -eq 0 ] || fail "the blank control page does not count as blank"
[ -n "$(console_errors "$tmp/error.log")" ] ||
	fail "the console error of the control page was not seen (log: $(tail -n 3 "$tmp/error.log"))"
printf 'ok: control pages (blank, script error) are detected\n'

# the report
report_ink=$(ink "$tmp/report.png")
[ "$report_ink" -ge 20 ] || fail "the report's screenshot is (nearly) blank: ${report_ink} per mille of ink"
printf 'ok: report screenshot has %s per mille of non-white pixels\n' "$report_ink"
errors=$(console_errors "$tmp/report.log")
[ -z "$errors" ] || fail "console errors while rendering the report: $errors"
printf 'ok: no console error\n'
grep -q '<svg' "$tmp/report.html" || fail "the report has no chart"
printf 'ok: the report has its charts\n'

dropdb "$db"
