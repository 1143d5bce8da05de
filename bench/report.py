#!/usr/bin/env python3
"""Turns the raw measurements of bench/suite.sh into the report.

    python3 bench/report.py RAW_DIR OUT_DIR

RAW_DIR holds samples.csv, info.txt, machine.txt and cipher.txt (written by
bench/run.sh and bench/suite.sh); OUT_DIR receives latest.md, latest.csv,
samples.csv and ratios.png (gnuplot, bench/ratios.gnuplot).

Ratios are relative throughput against plain PostgreSQL: tps / plain tps,
and for durations plain seconds / seconds. 1.00 is parity, below 1 slower.
"""
import csv
import os
import re
import shutil
import math
import statistics
import subprocess
import sys

raw, out = sys.argv[1], sys.argv[2]
here = os.path.dirname(os.path.abspath(__file__))
os.makedirs(out, exist_ok=True)


def kv_file(path):
    d = {}
    if os.path.exists(path):
        for line in open(path, encoding="utf-8"):
            if "=" in line:
                k, v = line.rstrip("\n").split("=", 1)
                d[k] = v
    return d


machine = kv_file(os.path.join(raw, "machine.txt"))
info = kv_file(os.path.join(raw, "info.txt"))
settings = dict(re.findall(r"(BENCH_\w+)=((?:\\ |[^ ])*)", machine.get("settings", "")))
settings = {k: v.replace("\\ ", " ") for k, v in settings.items()}

samples = list(csv.DictReader(open(os.path.join(raw, "samples.csv"), encoding="utf-8")))
shutil.copy(os.path.join(raw, "samples.csv"), os.path.join(out, "samples.csv"))

# An instance is <system>.<on|off> (data checksums); cmk-kv: start-up only.
KINDS = ["plain", "cmk", "gocryptfs", "cmk_nocipher", "cmk_timed"]
CKS = [c for c in settings.get("BENCH_CHECKSUMS", "on off").split() if c in ("on", "off")] or ["on"]
LABEL = {"plain": "plain", "cmk": "cmk", "gocryptfs": "gocryptfs", "cmk-kv": "cmk (Key Vault emulator KEK)",
         "cmk_nocipher": "cmk without AES", "cmk_timed": "cmk, AES timed"}


def inst(kind, ck):
    return "cmk-kv" if kind == "cmk-kv" else f"{kind}.{ck}"


def mb(n):
    return f"{int(n) / 1e9:.2f} GB" if n else "?"


copy_rows = int(settings.get("BENCH_COPY_ROWS", "0") or 0)
sort_rows = int(settings.get("BENCH_SORT_ROWS", "0") or 0)
join_rows = int(settings.get("BENCH_JOIN_ROWS", "0") or 0)
scan_rows = int(settings.get("BENCH_SCAN_ROWS", "0") or 0)
clients = settings.get("BENCH_CLIENTS", "?")
jobs = settings.get("BENCH_JOBS", "?")
T = settings.get("BENCH_T", "?")
PT = settings.get("BENCH_PAIR_T", "?")
big = f"big ({scan_rows / 1e6:g}M rows, {info.get('big_size', '?')})"
CASES = [  # case, unit, description, short label
    ("select_only", "tps", f"pgbench -S (select-only), scale {settings.get('BENCH_SCALE')}, -c {clients} -j {jobs}", "-S"),
    ("select_hot", "tps", f"pgbench -S over a tenth of the accounts (fits in shared_buffers {settings.get('BENCH_SHARED_BUFFERS')}), -c {clients}", "-S hot"),
    ("tpcb", "tps", f"pgbench tpcb-like, scale {settings.get('BENCH_SCALE')}, -c {clients} -j {jobs}", "tpcb"),
    ("insert64", "tps", f"small INSERT transactions, {settings.get('BENCH_INSERT_CLIENTS')} clients (WAL flushes)", "INSERT x64"),
    ("scan", "s", f"cold sequential scan of {big}, no parallel workers", "scan"),
    ("scan_par", "s", f"the same scan with 2 parallel workers", "scan 2w"),
    ("ctas", "s", f"CREATE TABLE AS SELECT * FROM big", "CTAS"),
    ("vacuum_full", "s", "VACUUM FULL big", "VAC FULL"),
    ("create_index", "s", "CREATE INDEX on big (md5 text; sort spills)", "CREATE IDX"),
    ("sort", "s", f"sort of {sort_rows / 1e6:g}M rows, work_mem {settings.get('BENCH_WORK_MEM')}, spills to temp files", "sort"),
    ("hash_join", "s", f"hash join {join_rows / 1e6:g}M x {join_rows / 1e6:g}M rows, work_mem {settings.get('BENCH_WORK_MEM')}, batches spill", "hash join"),
    ("copy", "s", f"COPY of a {mb(info.get('copy_csv_bytes'))} CSV ({copy_rows / 1e6:g}M rows, tmpfs) into a new table", "COPY"),
    ("wal_write", "s", f"WAL write: {settings.get('BENCH_WAL_MB')} MB of 64 kB logical messages, one commit", "WAL write"),
]
BENCHES = []
for c, unit, desc, short in CASES:
    BENCHES.append((c, unit, desc + (f", {T} s" if unit == "tps" else "") + " (rounds)", short))
    BENCHES.append((c + "_paired", unit, desc + (f", {PT} s" if unit == "tps" else "") + " (paired)", short + " p"))
BENCHES += [
    ("startup_pgctl", "s", "start-up: `pg_ctl start -w` (pg_ctl polls every 100 ms)", "start -w"),
    ("startup_ready", "s", "start-up: `pg_ctl start -W`, then postmaster.pid polled every 5 ms until ready", "start"),
]

FOREIGN_MAX = float(settings.get("BENCH_FOREIGN_MAX", "0.1") or 0.1)


def foreign_of(row):
    f = row.get("foreign") or ""
    return float(f) if f else None


allvals = {}
for row in samples:
    allvals.setdefault((row["benchmark"], row["system"]), []).append((float(row["value"]), foreign_of(row)))
present_inst = {k[1] for k in allvals}

# The samples a median is taken over: those during which other processes took
# at most FOREIGN_MAX of the CPU time, when at least 2 are left; else all.
vals = {}
used_note = {}
for key, lst in allvals.items():
    clean = [v for v, f in lst if f is None or f <= FOREIGN_MAX]
    if len(clean) >= 2:
        vals[key] = clean
        used_note[key] = "" if len(clean) == len(lst) else f" ({len(clean)}/{len(lst)})"
    else:
        vals[key] = [v for v, _ in lst]
        used_note[key] = " †"


def med(b, s):
    v = vals.get((b, s))
    return statistics.median(v) if v else None


# Paired benchmarks: value per (benchmark, instance, pair).
by_pair = {}
for row in samples:
    if row["benchmark"].endswith("_paired"):
        by_pair.setdefault((row["benchmark"], row["system"]), {})[row["round"]] = float(row["value"])


def base_of(s):
    return "plain.on" if s == "cmk-kv" else "plain." + s.split(".")[-1]


def matched_pairs(b, s, base=None):
    """Paired benchmark b: (instance's value, the base's value) of every pair
    both ran; the base is plain of the same checksum setting unless given."""
    mine, bp = by_pair.get((b, s), {}), by_pair.get((b, base or base_of(s)), {})
    return [(mine[p], bp[p]) for p in mine if p in bp]


def pair_ratios(b, unit, s, base=None):
    return [v / bv if unit == "tps" else bv / v for v, bv in matched_pairs(b, s, base) if v and bv]


def median_ci(xs, level=0.95):
    """Distribution-free confidence interval of the median (order statistics,
    binomial): (low, high, coverage), or None when there are too few."""
    xs = sorted(xs)
    n = len(xs)
    cdf, k, acc = [], 0, 0.0
    for i in range(n + 1):
        acc += math.comb(n, i) / 2 ** n
        cdf.append(acc)
    # largest k with P(Bin(n, 1/2) <= k - 1) <= (1 - level) / 2
    for j in range(1, n // 2 + 1):
        if cdf[j - 1] <= (1 - level) / 2:
            k = j
    if k == 0:
        return None
    return xs[k - 1], xs[n - k], 1 - 2 * cdf[k - 1]


def median_text(rs, digits, bold_below=None):
    """'median (low–high[, coverage%]), n=N' of per-pair ratios; the median in
    bold when below bold_below."""
    r = statistics.median(rs)
    txt = f"{r:.{digits}f}"
    if bold_below is not None and r < bold_below:
        txt = f"**{txt}**"
    c = median_ci(rs)
    if c:
        txt += f" ({c[0]:.{digits}f}–{c[1]:.{digits}f}" + ("" if c[2] >= 0.95 else f", {c[2] * 100:.0f}%") + ")"
    return txt + f", n={len(rs)}"


CLIENTS = int(settings.get("BENCH_CLIENTS", "2") or 2)
BIG_PAGES = int(info.get("big_pages", "0") or 0)


def cipher_only_ratio(plain_tps, secs_per_xact):
    """Plain's throughput with each transaction made longer by the cipher's
    seconds per transaction (CPU-bound clients: each client's cycle grows)."""
    return 1 / (1 + plain_tps * secs_per_xact / CLIENTS)


def ratio(b, unit, s):
    if b.endswith("_paired"):
        rs = pair_ratios(b, unit, s)
        return statistics.median(rs) if rs else None
    base = base_of(s)
    m, p = med(b, s), med(b, base)
    if m is None or p is None or m == 0:
        return None
    return m / p if unit == "tps" else p / m


def extra_per_page_ns(b, s):
    """Scan: time cmk adds per page of big, in ns (paired: median of per-pair differences)."""
    if not BIG_PAGES:
        return None
    if b.endswith("_paired"):
        d = [v - base for v, base in matched_pairs(b, s)]
        return statistics.median(d) * 1e9 / BIG_PAGES if d else None
    m, p = med(b, s), med(b, base_of(s))
    return (m - p) * 1e9 / BIG_PAGES if m is not None and p is not None else None


def fmt(v, unit):
    if v is None:
        return "–"
    if unit == "tps":
        return f"{v:,.0f}"
    if v < 1:
        return f"{v * 1000:.0f} ms"
    return f"{v:.2f} s"


def spread(b, s):
    v = vals.get((b, s))
    if not v or len(v) < 2:
        return None
    m = statistics.median(v)
    return (max(v) - min(v)) / m if m else None


# ---- CSV --------------------------------------------------------------------------
with open(os.path.join(out, "latest.csv"), "w", newline="", encoding="utf-8") as f:
    w = csv.writer(f)
    w.writerow(["benchmark", "unit", "system", "checksums", "n_used", "n", "median", "min", "max", "ratio_to_plain"])
    for b, unit, _, _ in BENCHES:
        for s in sorted(present_inst):
            v = vals.get((b, s))
            if not v:
                continue
            r = ratio(b, unit, s)
            w.writerow([b, unit, s.split(".")[0], "on" if s == "cmk-kv" else s.split(".")[-1], len(v), len(allvals[(b, s)]),
                        f"{statistics.median(v):.4f}", f"{min(v):.4f}", f"{max(v):.4f}", "" if r is None else f"{r:.3f}"])

# ---- chart ------------------------------------------------------------------------------
series = [inst(k, c) for c in CKS for k in KINDS if k != "plain" and inst(k, c) in present_inst]
SERIES_LABEL = {s: f"{s.split('.')[0]}, checksums {s.split('.')[1]}" for s in series}
dat = os.path.join(out, "ratios.dat")
with open(dat, "w", encoding="utf-8") as f:
    f.write("# benchmark " + " ".join(series) + "\n")
    for b, unit, _, short in BENCHES:
        if b.startswith("startup") or not any(vals.get((b, s)) for s in series):
            continue
        cells = []
        for s in series:
            r = ratio(b, unit, s)
            cells.append("?" if r is None else f"{r:.3f}")
        f.write(f"\"{short}\" " + " ".join(cells) + "\n")
png = os.path.join(out, "ratios.png")
title = (f"Throughput relative to plain PostgreSQL 15 with the same checksum setting (1.0 = same; higher is better); "
         f"rounds: median of {settings.get('BENCH_ROUNDS')}, p: paired, median of {settings.get('BENCH_PAIRS')} per-pair ratios")
if settings.get("BENCH_QUICK") == "1":
    title = "QUICK MODE (not the real numbers) - " + title
pgv = re.search(r"PostgreSQL\) (\S+)", machine.get("postgres", ""))
subtitle = (f"{machine.get('nproc')} x {machine.get('cpu')}, {machine.get('memory')}, "
            f"PostgreSQL {pgv.group(1) if pgv else '?'}, cmk {machine.get('cmk_commit', '?').split()[0]}")
if series:
    gp = subprocess.run(
        ["gnuplot", "-e",
         f"datafile='{dat}'; outfile='{png}'; ncol={len(series)}; "
         + "".join(f"t{i + 1}='{SERIES_LABEL[s]}'; " for i, s in enumerate(series)) +
         f"charttitle='{title}'; subtitle='{subtitle}'",
         os.path.join(here, "ratios.gnuplot")],
        capture_output=True, text=True)
    if gp.returncode != 0:
        sys.stderr.write(gp.stderr)
        sys.exit("gnuplot failed")
os.remove(dat)

# ---- markdown ------------------------------------------------------------------------------
L = []
add = L.append
quick = settings.get("BENCH_QUICK") == "1"
add("# cmk benchmark: plain PostgreSQL 15 vs cmk vs gocryptfs, side by side")
add("")
if quick:
    add("**Quick mode** (short settings, to check that the suite works): not the numbers to quote.")
    add("")
add(f"Run {machine.get('date')}, {int(machine.get('elapsed_s', '0')) / 60:.0f} min, with:")
add("")
add("```")
add(machine.get("command", "bash bench/run.sh"))
add("```")
add("")
add("## Machine")
add("")
add("| | |")
add("|---|---|")
add(f"| CPU | {machine.get('nproc')} × {machine.get('cpu')} (flags: {machine.get('cpu_flags_aes', '').strip()}) |")
add(f"| memory | {machine.get('memory')} (swap {machine.get('swap')}) |")
add(f"| kernel | {machine.get('kernel')} |")
add(f"| OS | {machine.get('os')} |")
add(f"| PostgreSQL | {machine.get('postgres')} |")
add(f"| cmk | {machine.get('cmk_commit')}; last change to src/: {machine.get('cmk_src_commit', '?')} |")
add(f"| OpenSSL | {machine.get('openssl')} |")
add(f"| gocryptfs | {machine.get('gocryptfs')} |")
add(f"| cluster storage | {machine.get('disk')}; the COPY file on {machine.get('csv_fs')} |")
add("")

add("## Results")
add("")
add("Ratio = throughput relative to plain PostgreSQL **with the same data-checksum setting** "
    "(tps ÷ plain tps; for durations, plain seconds ÷ seconds): 1.00 is parity, 0.90 means 10% slower. "
    "*Rounds*: median over the rounds, each instance measured alone (only its server up); ± is the spread "
    "(max − min) ÷ median of the samples used. *Paired*: every server up, the instances measured one after the "
    "other, seconds apart, in alternating order; ratio = median of the per-pair ratios. "
    f"A rounds median leaves out the measurements during which other processes on this shared machine took more "
    f"than {FOREIGN_MAX:.0%} of all CPU time, when at least 2 remain: (k/n) says k of n were used; "
    "† marks one taken over all samples because fewer than 2 were clean.")
add("")
for ck in CKS:
    kinds = [k for k in KINDS if inst(k, ck) in present_inst]
    if not kinds:
        continue
    others = [k for k in kinds if k != "plain"]
    add(f"### Data checksums {ck}")
    add("")
    head = "| benchmark | plain |"
    sep = "|---|---:|"
    for k in others:
        head += f" {LABEL[k]} | ratio |"
        sep += "---:|---:|"
    add(head)
    add(sep)
    for b, unit, desc, _ in BENCHES:
        if b.startswith("startup"):
            continue
        if not any(vals.get((b, inst(k, ck))) for k in kinds):
            continue
        row = f"| {desc} | {fmt(med(b, inst('plain', ck)), unit)}"
        sp = spread(b, inst("plain", ck))
        row += (f" ±{sp * 100:.0f}%" if sp is not None else "") + used_note.get((b, inst("plain", ck)), "") + " |"
        for k in others:
            s = inst(k, ck)
            m = med(b, s)
            r = ratio(b, unit, s)
            sp = spread(b, s)
            row += (f" {fmt(m, unit)}" + (f" ±{sp * 100:.0f}%" if sp is not None and m is not None else "")
                    + used_note.get((b, s), "") + " |")
            row += (f" **{r:.2f}** |" if r is not None and r < 0.95 and k == "cmk"
                    else f" {r:.2f} |" if r is not None else " – |")
        add(row)
    add("")
    for b in ("scan", "scan_paired"):
        x = extra_per_page_ns(b, inst("cmk", ck))
        if x is not None:
            add(f"Cold scan ({'paired' if b.endswith('paired') else 'rounds'}): cmk adds {x:,.0f} ns per page of big "
                f"({info.get('big_pages')} pages), checksums {ck}.")
    add("")
# Issue 17's targets, paired ratios, beside gocryptfs.
cipher_txt = open(os.path.join(raw, "cipher.txt"), encoding="utf-8").read() if os.path.exists(os.path.join(raw, "cipher.txt")) else ""
mb_read = re.search(r"^  data page read path +\d+ MB/s +(\d+) ns/page", cipher_txt, re.M)
mb_dec = re.search(r"decrypt ([\d.]+) MB/s, openssl", cipher_txt)
micro = {"on": int(mb_read.group(1)) if mb_read else None,
         "off": 8192e3 / float(mb_dec.group(1)) if mb_dec else None}
TARGETS = [("select_only_paired", "tps", 0.97, "pgbench -S"), ("tpcb_paired", "tps", 0.98, "pgbench tpcb-like"),
           ("scan_paired", "s", 0.90, "cold sequential scan"), ("ctas_paired", "s", 0.95, "CREATE TABLE AS"),
           ("vacuum_full_paired", "s", 0.95, "VACUUM FULL"), ("create_index_paired", "s", 0.95, "CREATE INDEX"),
           ("insert64_paired", "tps", 0.95, f"{settings.get('BENCH_INSERT_CLIENTS')}-client INSERTs")]
if any(by_pair.get((b, inst("cmk", ck))) for b, *_ in TARGETS for ck in CKS):
    add("### Issue 17's targets (paired ratios)")
    add("")
    add("cmk's cell: median of the per-pair ratios (n pairs) and, in brackets, the 95% confidence interval of "
        "that median (order statistics; its coverage when n allows no exact 95%). A target is met when the "
        "median reaches it; when the interval straddles it, this machine's noise does not decide.")
    add("")
    add("| case | target | " + " | ".join(f"cmk, checksums {ck} | gocryptfs, checksums {ck}" for ck in CKS) + " |")
    add("|---|---:|" + "---:|---:|" * len(CKS))
    for b, unit, target, label in TARGETS:
        cells = []
        for ck in CKS:
            rs = pair_ratios(b, unit, inst("cmk", ck))
            g = ratio(b, unit, inst("gocryptfs", ck))
            cells.append(median_text(rs, 2, bold_below=target) if rs else "–")
            cells.append("–" if g is None else f"{g:.2f}")
        add(f"| {label} | ≥ {target:.2f} | " + " | ".join(cells) + " |")
    add("")
    for ck in CKS:
        rp = info.get("reads_per_xact_" + inst("cmk", ck))
        m = micro.get(ck)
        tp = med("select_only_paired", inst("plain", ck))
        if rp and m and tp:
            exp = cipher_only_ratio(tp, float(rp) * m * 1e-9)
            add(f"Checksums {ck}: pgbench -S reads {rp} pages per transaction from outside shared_buffers "
                f"(cmk decrypts each); at the microbenchmark's {m:,.0f} ns per page and plain's {tp:,.0f} tps on "
                f"{CLIENTS} clients, the cipher alone would give {exp:.3f}.")
    add("")
    for ck in CKS:
        x = extra_per_page_ns("scan_paired", inst("cmk", ck))
        m = micro.get(ck)
        if x is not None and m:
            add(f"Checksums {ck}: the cold scan's extra per page is {x:,.0f} ns, {x / m:.2f}× the microbenchmark's "
                f"{'data page read path' if ck == 'on' else 'XTS decrypt'} ({m:,.0f} ns, CPU time; target ≤ 1.2×).")
    add("")
# What select-only's cost is made of: cmk without its AES, and cmk with its
# AES calls timed where they run (bench/variant.py).
VARIANTS = ("cmk_nocipher", "cmk_timed")


def ratio_cell(b, unit, s, base=None):
    rs = pair_ratios(b, unit, s, base)
    return median_text(rs, 3) if rs else "–"


if any(by_pair.get(("select_only_paired", inst(k, ck))) for k in VARIANTS for ck in CKS):
    add("### What select-only's cost is made of")
    add("")
    add("Two builds of the same commit beside cmk (`bench/variant.py`, never installed): *cmk without AES*, every "
        "AES-XTS call replaced by a copy (in place: nothing), so the server runs all of cmk but the cipher "
        "(its own cluster, whose pages carry cmk's generation bits over plaintext); *cmk, AES timed*, each 8 kB "
        "call timed with the TSC where it runs (register clearing included), counted by every server process "
        "and written to the server log at exit. Paired select-only, per-pair ratios: median (95% interval), n pairs.")
    add("")
    add("| checksums | cmk / plain | cmk without AES / plain | cmk / cmk without AES | cmk, AES timed / plain "
        "| AES per page in place (decrypt calls) | the AES in place alone would give |")
    add("|---|---:|---:|---:|---:|---:|---:|")
    for ck in CKS:
        b = "select_only_paired"
        timed = (info.get("timed_" + inst("cmk_timed", ck)) or "").split()
        ns = float(timed[1]) if len(timed) >= 2 else None
        rp = info.get("reads_per_xact_" + inst("cmk", ck)) or info.get("reads_per_xact_" + inst("cmk_timed", ck))
        tp = med(b, inst("plain", ck))
        alone = f"{cipher_only_ratio(tp, float(rp) * ns * 1e-9):.3f}" if ns and rp and tp else "–"
        add(f"| {ck} | {ratio_cell(b, 'tps', inst('cmk', ck))} | {ratio_cell(b, 'tps', inst('cmk_nocipher', ck))} "
            f"| {ratio_cell(b, 'tps', inst('cmk', ck), inst('cmk_nocipher', ck))} | {ratio_cell(b, 'tps', inst('cmk_timed', ck))} "
            f"| {f'{ns:,.0f} ns ({int(timed[0]):,})' if ns else '–'} | {alone} |")
    add("")
    add("The last column: plain's transactions per second, each made longer by the pages it reads (pg_stat_database, "
        "above) times the AES's cost per page as timed in place. *cmk, AES timed* does what cmk does plus two TSC "
        "reads per page (about 20 ns): how far its ratio is from cmk's is this machine's noise.")
    add("")
# Every case's AES, as cmk_timed's processes counted it during each
# measurement (bench/suite.sh: timed.csv), beside cmk without AES.
timed_path = os.path.join(raw, "timed.csv")
timed_rows = list(csv.DictReader(open(timed_path, encoding="utf-8"),
                                 fieldnames=["round", "system", "benchmark", "dcalls", "dcycles", "ecalls", "ecycles"])) \
    if os.path.exists(timed_path) else []


def aes_of_case(b, s):
    """Medians over the measurements of case b on cmk_timed instance s:
    (decrypt calls, encrypt calls, seconds of AES summed over processes)."""
    fields = (info.get("timed_" + s) or "").split()
    rate = float(fields[4]) if len(fields) >= 5 else None
    rows = [r for r in timed_rows if r["benchmark"] == b and r["system"] == s]
    if not rows or not rate:
        return None
    return (statistics.median(int(r["dcalls"]) for r in rows), statistics.median(int(r["ecalls"]) for r in rows),
            statistics.median((int(r["dcycles"]) + int(r["ecycles"])) * rate * 1e-9 for r in rows))


def aes_alone_ratio(b, unit, ck, aes_s):
    """Plain's result with the AES's time added: to a duration as it is (all
    of it on the critical path, an upper bound of its cost when processes
    overlap); for pgbench, per transaction, spread over the clients as in
    cipher_only_ratio."""
    p = med(b, inst("plain", ck))
    if p is None:
        return None
    if unit == "s":
        return p / (p + aes_s)
    xacts = (med(b, inst("cmk_timed", ck)) or 0) * float(PT)
    return cipher_only_ratio(p, aes_s / xacts) if xacts else None


timed_cases = [(b, unit, short) for b, unit, _, short in BENCHES
               if b.endswith("_paired") and any(aes_of_case(b, inst("cmk_timed", ck)) for ck in CKS)]
if timed_cases:
    add("### What each case's cost is made of")
    add("")
    add("The variants of the section above, every paired case. *AES calls*: 8 kB XTS calls made by all of "
        "cmk_timed's processes (backend, parallel workers, WAL writer, checkpointer) during one measurement, "
        "decrypt + encrypt (median over the pairs), and per page of big for the cases that read it. "
        "*AES time*: their time in place, summed over the processes. *The AES alone would give*: plain's "
        "time with that time added (a duration: all of it on the critical path, which overstates it when "
        "processes overlap; pgbench: per transaction, spread over the clients); *at the microbenchmark's "
        "speed*: the same with every call at the page cipher benchmark's cost (XTS decrypt with checksums "
        "off, the data page read path with checksums on), the least the cipher could cost.")
    add("")
    add("| case | checksums | cmk / plain | cmk without AES / plain | cmk / cmk without AES | AES calls | "
        "AES calls per page of big | AES time | the AES alone would give | at the microbenchmark's speed |")
    add("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for b, unit, short in timed_cases:
        for ck in CKS:
            a = aes_of_case(b, inst("cmk_timed", ck))
            if not a:
                continue
            dc, ec, aes_s = a
            per_page = (f"{dc / BIG_PAGES:.2f} + {ec / BIG_PAGES:.2f}"
                        if BIG_PAGES and b.split("_paired")[0] in ("scan", "scan_par", "ctas", "vacuum_full", "create_index")
                        else "–")
            alone = aes_alone_ratio(b, unit, ck, aes_s)
            best = aes_alone_ratio(b, unit, ck, (dc + ec) * micro[ck] * 1e-9) if micro.get(ck) else None
            add(f"| {short.removesuffix(' p')} | {ck} | {ratio_cell(b, unit, inst('cmk', ck))} "
                f"| {ratio_cell(b, unit, inst('cmk_nocipher', ck))} "
                f"| {ratio_cell(b, unit, inst('cmk', ck), inst('cmk_nocipher', ck))} | {dc:,.0f} + {ec:,.0f} | {per_page} "
                f"| {fmt(aes_s, 's')} | {'–' if alone is None else f'{alone:.3f}'} | {'–' if best is None else f'{best:.3f}'} |")
    add("")
if any(s.startswith("startup") for s, _ in allvals):
    add("### Start-up (checksums on)")
    add("")
    kinds = [k for k in KINDS + ["cmk-kv"] if vals.get(("startup_ready", inst(k, "on")))]
    add("| start-up | " + " | ".join(LABEL[k] for k in kinds) + " |")
    add("|---|" + "---:|" * len(kinds))
    for b, unit, desc, _ in BENCHES:
        if b.startswith("startup"):
            cells = []
            for k in kinds:
                s = inst(k, "on")
                r = ratio(b, unit, s)
                cells.append(fmt(med(b, s), unit) + ("" if k == "plain" or r is None else f" ({r:.2f})"))
            add(f"| {desc} | " + " | ".join(cells) + " |")
    add("")
add("![ratios](ratios.png)")
add("")

# page cipher
cipher = open(os.path.join(raw, "cipher.txt"), encoding="utf-8").read() if os.path.exists(os.path.join(raw, "cipher.txt")) else ""
m = re.search(r"median: cmk encrypt ([\d.]+) MB/s \((\d+) ns/page\), decrypt ([\d.]+) MB/s, openssl speed ([\d.]+) MB/s", cipher)
r = re.search(r"ratio to openssl speed: encrypt ([\d.]+), decrypt ([\d.]+)", cipher)
add(f"### Page cipher (`bash bench/cipher.sh {settings.get('BENCH_CIPHER_ROUNDS')} {settings.get('BENCH_CIPHER_SECS')}`, run first on the idle machine)")
add("")
b = re.search(r"^cmk's XTS: (.+)$", cipher, re.M)
if b:
    add(f"cmk's AES-256-XTS is run by {b.group(1)} (the library the server chose at load, src/core/xts_cipher.h); "
        "`openssl speed` is OpenSSL's, as the limit the issue sets.")
    add("")
if m and r:
    add("| cmk encrypt | cmk decrypt | `openssl speed -evp aes-256-xts -bytes 8192` | ratio encrypt / decrypt |")
    add("|---:|---:|---:|---:|")
    add(f"| {float(m.group(1)):.0f} MB/s ({m.group(2)} ns/page) | {float(m.group(3)):.0f} MB/s | {float(m.group(4)):.0f} MB/s | {float(r.group(1)):.2f} / {float(r.group(2)):.2f} |")
    paths = re.findall(r"^  (\S.*?\S) +(\d+) MB/s +(\d+) ns/page *([\d.]+x)?$", cipher, re.M)
    if paths:
        add("")
        add("Per-page paths, with the code the server runs (`bench/page_cipher_bench.cpp`): the XTS calls above plus "
            "checksums and header work for data pages (src/pg/cipher/page_cipher.c's sequence), the WAL page format of "
            "src/core/wal_page.")
        add("")
        add("| path | MB/s | ns per 8 kB page | ratio to openssl speed |")
        add("|---|---:|---:|---:|")
        for label, mbs, ns, ratio in paths:
            add(f"| {label} | {int(mbs)} | {int(ns)} | {ratio.rstrip('x') if ratio else '–'} |")
else:
    add("bench/cipher.sh gave no result:")
    add("```")
    add(cipher.strip()[-1500:])
    add("```")
add("")

add("## What was measured")
add("")
add(f"- **Instances**: the same Debian PostgreSQL 15 binaries and the same settings; each system has two fresh "
    f"clusters, created once at the start of the run (`initdb --locale=C`, one with `--data-checksums`, one without, "
    f"as Debian's `pg_createcluster` and `initdb` make by default), named `<system>.<on|off>`. "
    f"*plain*: no extension. *cmk*: `shared_preload_libraries = 'cmk'` (a copy of the cmk.so just built, found "
    f"through `dynamic_library_path`; nothing is installed into the system's $libdir), "
    f"`cmk.key_url = 'file:…/kek.pem'` (RSA {settings.get('BENCH_KEK_BITS')}); it encrypts data pages, "
    f"WAL and temporary files. *gocryptfs*: the plain server with its whole data directory (WAL included) "
    f"inside a gocryptfs mount (default options: AES-256-GCM, 4 KiB blocks, encrypted names; "
    f"mounted by root with `-allow_other`, the ciphertext directory owned by postgres); the ciphertext directory is on the same disk.")
kv_skip = info.get("kv_skipped")
if kv_skip:
    add(f"- **Key Vault emulator**: skipped — {kv_skip}.")
elif "cmk-kv" in present_inst:
    add(f"- **cmk (Key Vault emulator KEK)**: start-up only, on a small cluster of its own with the same settings, "
        f"KEK = RSA {settings.get('BENCH_KEK_BITS')} in test/kv_emulator ({info.get('kv_key', '')}); "
        f"each start signs in (client secret), fetches a token and unwraps the DEK over HTTPS.")
if machine.get("gocryptfs_skipped"):
    add(f"- **gocryptfs skipped**: {machine.get('gocryptfs_skipped')}.")
add(f"- **Rounds**: {settings.get('BENCH_ROUNDS')} rounds; in each, the instances in turn (systems "
    f"{', '.join(settings.get('BENCH_SYSTEMS', '').split())}, checksums {', '.join(CKS)})"
    + (", then the Key Vault start-ups" if "cmk-kv" in present_inst else "")
    + "; only the instance under test runs. An instance's round: "
    f"{settings.get('BENCH_STARTS')} × start-up with `pg_ctl start -w` and {settings.get('BENCH_STARTS')} × polled start-up "
    f"(each after a clean `pg_ctl stop -m fast`), start, {settings.get('BENCH_WARMUP')} s of untimed pgbench -S, then "
    f"the cases `{settings.get('BENCH_CASES')}`, stop.")
add(f"- **Paired**: then every instance's server is up at once and, for {settings.get('BENCH_PAIRS')} pairs, each case "
    f"(`{settings.get('BENCH_PAIR_CASES')}`) runs on every instance in turn, the order reversed from one pair to the next "
    f"(pgbench cases {PT} s each)"
    + (f", gocryptfs in the first {settings.get('BENCH_GOCRYPTFS_PAIRS')} pairs only"
       if settings.get("BENCH_GOCRYPTFS_PAIRS") and any(i.startswith("gocryptfs") for i in present_inst) else "")
    + "; only one instance works at a time. Right before each measurement the relations the case reads "
    "are read into the OS page cache (untimed): \"cold\" means outside shared_buffers, in the page cache.")
add(f"- **Kernel**: DAMON proactive reclaim {machine.get('damon', '?')}.")
add(f"- **Settings** (all instances): shared_buffers = {settings.get('BENCH_SHARED_BUFFERS')}, max_wal_size = 8GB, "
    f"checkpoint_timeout = 30min (no checkpoint starts inside a measurement by itself; every case that writes "
    f"is preceded and followed by an untimed CHECKPOINT), fsync and synchronous_commit on, wal_level replica, "
    f"autovacuum on (every table is frozen at set-up), everything else initdb's defaults "
    f"(max_parallel_workers_per_gather 2, maintenance_work_mem 64MB).")
add(f"- **pgbench**: scale {settings.get('BENCH_SCALE')} (database {info.get('db_size', '?')}, pgbench_accounts "
    f"{info.get('accounts_size', '?')} with its index), several times shared_buffers but in the page cache, "
    f"so most reads miss shared buffers and cmk decrypts a page for each of those misses. "
    f"`pgbench -n -c {clients} -j {jobs}`; tps without initial connection time. tpcb-like after a CHECKPOINT. "
    f"**INSERT x{settings.get('BENCH_INSERT_CLIENTS')}**: `pgbench -c {settings.get('BENCH_INSERT_CLIENTS')}` of "
    f"`INSERT INTO ins_t (k, t) VALUES (:client_id, '<53 bytes>')` (bigserial primary key), one per transaction, "
    f"after TRUNCATE and CHECKPOINT.")
add(f"- **Cold scan**: `{info.get('scan_q', 'SELECT count(*), max(s) FROM big')}` over big ({info.get('big_pages', '?')} pages), "
    f"frozen and checkpointed at set-up so that a scan writes nothing; it is several times shared_buffers, so "
    f"PostgreSQL reads it through a 256 kB ring: every page comes from the OS page cache and, with cmk, is decrypted. "
    f"`max_parallel_workers_per_gather` 0, and 2 ({info.get('scan_par_plan', '')}).")
add("- **Rewrites**: `CREATE TABLE ctas_t AS SELECT * FROM big` (dropped afterwards), `VACUUM FULL big`, "
    "`CREATE INDEX big_s ON big (s)` (dropped afterwards): each reads big, writes a relation and its WAL.")
add(f"- **COPY**: `COPY copy_t FROM '<file>' (FORMAT csv)` run by the server; the file, "
    f"{mb(info.get('copy_csv_bytes'))} ({copy_rows} rows of bigint, int, 64-character text, timestamptz), "
    f"was written once from generate_series into {settings.get('BENCH_CSV_DIR')} (tmpfs: reading it costs no disk I/O). "
    f"The table is WAL-logged: {info.get('copy_wal_mb_plain.on', '?')} MB of WAL, table "
    f"{info.get('copy_table_size_plain.on', '?')} (plain, round 1). Time = the COPY statement.")
add(f"- **WAL write**: `SELECT count(pg_logical_emit_message(true, 'cmk-bench', repeat('x', 65536))) "
    f"FROM generate_series(1, {int(settings.get('BENCH_WAL_MB', '0')) * 16})` "
    f"({info.get('wal_write_mb_plain.on', '?')} MB of WAL), whose commit flushes it all: WAL insertion, "
    f"XLogWrite (where cmk encrypts each WAL page) and the segment fsyncs, nothing else.")
add(f"- **Sort**: `SET work_mem = '{settings.get('BENCH_WORK_MEM')}'; SET max_parallel_workers_per_gather = 0; "
    f"SELECT count(*) FROM (SELECT k FROM sort_src ORDER BY k) s` over {sort_rows} rows of md5 text "
    f"(table {info.get('sort_src_size', '?')}); plan: `{info.get('sort_plan', '?')}`. **Hash join**: "
    f"`SELECT count(*), max(a || b) FROM hj_a JOIN hj_b USING (id)` ({info.get('hj_size', '?')}), work_mem "
    f"{settings.get('BENCH_WORK_MEM')}, no parallel workers, merge and nested-loop joins off; plan: `{info.get('hj_plan', '?')}`.")
add("- **Start-up**: a clean shutdown before each start, so no recovery; with cmk the postmaster reads "
    "the keyring and unwraps the DEK with the KEK before it accepts connections.")
gate_path = os.path.join(raw, "gate.csv")
if os.path.exists(gate_path):
    gates = list(csv.DictReader(open(gate_path, encoding="utf-8")))
    limit = float(settings.get("BENCH_QUIET_BUSY", "0.2") or 0.2)
    busy = [g for g in gates if float(g["busy"] or 0) > limit]
    waited = sum(int(g["waited"] or 0) for g in gates)
    add(f"- **Shared machine**: other engineers build and test on this machine during the run. Before each "
        f"instance's round, the paired phase (and the cipher benchmark: {machine.get('cipher_gate', '?')}) the suite waits "
        f"until at most {limit:.0%} of the CPU time is busy (`bench/quiet.sh`, at most "
        f"{settings.get('BENCH_QUIET_WAIT')} s): it waited {waited} s in all"
        + (f"; {len(busy)} of {len(gates)} rounds still started on a busy machine ("
           + ", ".join(f"round {g['round']} {g['system']} {float(g['busy']):.0%}" for g in busy) + ")"
           if busy else f", and all {len(gates)} rounds started on a quiet machine")
        + f". Each sample also records the share of all CPU time that processes outside the run's cgroup took "
          f"while it ran; a measurement (not a start-up) above {FOREIGN_MAX:.0%} was run again after a quiet "
          f"gate, at most {settings.get('BENCH_RETRIES', '0')} times, and the medians use the clean samples "
          "(see the notes under the table).")
if info.get("check_pages"):
    add(f"- **Checks after the run**: {info['check_pages']}; {info.get('check_wal', '')}; "
        f"ERROR/FATAL/PANIC in cmk's server logs (besides background workers ended by the fast shutdowns): "
        + "; ".join(f"checksums {ck}: {info.get('cmk_log_errors_' + ck) or 'none'}" for ck in CKS) + ". "
        f"{info.get('cmk_keyring', '')}")
add("")

add("## All samples")
add("")
add(f"[n%] after a sample: other processes took n% of all CPU time during it (above {FOREIGN_MAX:.0%}: "
    "left out of the median when possible).")
add("")
rounds = sorted({int(x["round"]) for x in samples})
add("| benchmark | instance | " + " | ".join(f"round / pair {i}" for i in rounds) + " |")
add("|---|---|" + "---:|" * len(rounds))
for b, unit, _, short in BENCHES:
    for s in [inst(k, c) for c in CKS for k in KINDS] + ["cmk-kv"]:
        per = {}
        for x in samples:
            if x["benchmark"] == b and x["system"] == s:
                per.setdefault(int(x["round"]), []).append((float(x["value"]), foreign_of(x)))
        if not per:
            continue
        cells = []
        for i in rounds:
            v = per.get(i, [])
            cells.append(", ".join(fmt(y, unit) + (f" [{f:.0%}]" if f is not None and f > FOREIGN_MAX else "")
                                   for y, f in v) if v else "")
        add(f"| {short} | {s} | " + " | ".join(cells) + " |")
add("")
add("Files: `latest.csv` (medians, ranges and ratios), `samples.csv` (every measurement), "
    "`ratios.png` (the chart). Raw page-cipher output:")
add("")
add("```")
add(cipher.strip())
add("```")
add("")
open(os.path.join(out, "latest.md"), "w", encoding="utf-8").write("\n".join(L))
