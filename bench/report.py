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

SYSTEMS = ["plain", "cmk", "gocryptfs", "cmk-kv"]
LABEL = {
    "plain": "plain",
    "cmk": "cmk (file KEK)",
    "gocryptfs": "gocryptfs",
    "cmk-kv": "cmk (Key Vault emulator KEK)",
}


def mb(n):
    return f"{int(n) / 1e9:.2f} GB" if n else "?"


copy_rows = int(settings.get("BENCH_COPY_ROWS", "0") or 0)
sort_rows = int(settings.get("BENCH_SORT_ROWS", "0") or 0)
clients = settings.get("BENCH_CLIENTS", "?")
jobs = settings.get("BENCH_JOBS", "?")
T = settings.get("BENCH_T", "?")
BENCHES = [
    ("select_only", "tps", f"pgbench -S (select-only), scale {settings.get('BENCH_SCALE')}, -c {clients} -j {jobs}, {T} s"),
    ("tpcb", "tps", f"pgbench tpcb-like, scale {settings.get('BENCH_SCALE')}, -c {clients} -j {jobs}, {T} s"),
    ("select_only_paired", "tps", f"pgbench -S, paired: {settings.get('BENCH_PAIRS')} runs of {settings.get('BENCH_PAIR_T')} s per system, all servers up, alternating (ratio: median of per-pair ratios)"),
    ("tpcb_paired", "tps", f"pgbench tpcb-like, paired: {settings.get('BENCH_PAIRS')} runs of {settings.get('BENCH_PAIR_T')} s per system, alternating (ratio: median of per-pair ratios)"),
    ("copy", "s", f"COPY of a {mb(info.get('copy_csv_bytes'))} CSV ({copy_rows / 1e6:g}M rows, tmpfs) into a new table"),
    ("wal_write", "s", f"WAL write: {settings.get('BENCH_WAL_MB')} MB of 64 kB logical messages, one backend, one commit"),
    ("sort", "s", f"sort of {sort_rows / 1e6:g}M rows, work_mem {settings.get('BENCH_WORK_MEM')}, spills to temp files"),
    ("startup_pgctl", "s", "start-up: `pg_ctl start -w` (pg_ctl polls every 100 ms)"),
    ("startup_ready", "s", "start-up: `pg_ctl start -W`, then postmaster.pid polled every 5 ms until ready"),
]
SHORT = {
    "select_only": "pgbench -S",
    "tpcb": "pgbench tpcb",
    "select_only_paired": "-S paired",
    "tpcb_paired": "tpcb paired",
    "copy": f"COPY {mb(info.get('copy_csv_bytes')).replace('.00 ', ' ')}",
    "wal_write": "WAL write",
    "sort": "sort (temp)",
    "startup_pgctl": "start-up -w",
    "startup_ready": "start-up",
}

FOREIGN_MAX = float(settings.get("BENCH_FOREIGN_MAX", "0.1") or 0.1)


def foreign_of(row):
    f = row.get("foreign") or ""
    return float(f) if f else None


allvals = {}
for row in samples:
    allvals.setdefault((row["benchmark"], row["system"]), []).append((float(row["value"]), foreign_of(row)))
present = [s for s in SYSTEMS if any(k[1] == s for k in allvals)]

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


# Paired benchmarks: value per (benchmark, system, pair).
by_pair = {}
for row in samples:
    if row["benchmark"].endswith("_paired"):
        by_pair.setdefault((row["benchmark"], row["system"]), {})[row["round"]] = float(row["value"])


def ratio(b, unit, s):
    if b.endswith("_paired"):
        mine, base = by_pair.get((b, s), {}), by_pair.get((b, "plain"), {})
        rs = [mine[p] / base[p] if unit == "tps" else base[p] / mine[p] for p in mine if p in base and base[p] and mine[p]]
        return statistics.median(rs) if rs else None
    m, p = med(b, s), med(b, "plain")
    if m is None or p is None or m == 0:
        return None
    return m / p if unit == "tps" else p / m


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
    w.writerow(["benchmark", "unit", "system", "n_used", "n", "median", "min", "max", "ratio_to_plain"])
    for b, unit, _ in BENCHES:
        for s in present:
            v = vals.get((b, s))
            if not v:
                continue
            r = ratio(b, unit, s)
            w.writerow([b, unit, s, len(v), len(allvals[(b, s)]), f"{statistics.median(v):.4f}", f"{min(v):.4f}", f"{max(v):.4f}",
                        "" if r is None else f"{r:.3f}"])

# ---- chart ------------------------------------------------------------------------------
others = [s for s in present if s != "plain"]
dat = os.path.join(out, "ratios.dat")
with open(dat, "w", encoding="utf-8") as f:
    f.write("# benchmark " + " ".join(others) + "\n")
    for b, unit, _ in BENCHES:
        if not any(vals.get((b, s)) for s in others):
            continue
        cells = []
        for s in others:
            r = ratio(b, unit, s)
            cells.append("?" if r is None else f"{r:.3f}")
        f.write(f"\"{SHORT[b]}\" " + " ".join(cells) + "\n")
png = os.path.join(out, "ratios.png")
title = (f"Throughput relative to plain PostgreSQL 15 (1.0 = same; higher is better), "
         f"median of {settings.get('BENCH_ROUNDS')} rounds")
if settings.get("BENCH_QUICK") == "1":
    title = "QUICK MODE (not the real numbers) - " + title
pgv = re.search(r"PostgreSQL\) (\S+)", machine.get("postgres", ""))
subtitle = (f"{machine.get('nproc')} x {machine.get('cpu')}, {machine.get('memory')}, "
            f"PostgreSQL {pgv.group(1) if pgv else '?'}, cmk {machine.get('cmk_commit', '?').split()[0]}")
gp = subprocess.run(
    ["gnuplot", "-e",
     f"datafile='{dat}'; outfile='{png}'; ncol={len(others)}; "
     + "".join(f"t{i + 1}='{LABEL[s]}'; " for i, s in enumerate(others)) +
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
add("Medians over the rounds; ratio = throughput relative to plain "
    "(tps ÷ plain tps; for durations, plain seconds ÷ seconds): 1.00 is parity, "
    "0.90 means 10% slower. ± is the spread (max − min) ÷ median of the samples used. "
    f"A median leaves out the measurements during which other processes on this shared machine took more "
    f"than {FOREIGN_MAX:.0%} of all CPU time, when at least 2 remain: (k/n) says k of n were used; "
    "† marks one taken over all samples because fewer than 2 were clean.")
add("")
head = "| benchmark | plain |"
sep = "|---|---:|"
for s in others:
    head += f" {LABEL[s]} | ratio |"
    sep += "---:|---:|"
add(head)
add(sep)
for b, unit, desc in BENCHES:
    if not any(vals.get((b, s)) for s in present):
        continue
    row = f"| {desc} | {fmt(med(b, 'plain'), unit)}"
    sp = spread(b, "plain")
    row += (f" ±{sp * 100:.0f}%" if sp is not None else "") + used_note.get((b, "plain"), "") + " |"
    for s in others:
        m = med(b, s)
        r = ratio(b, unit, s)
        sp = spread(b, s)
        row += (f" {fmt(m, unit)}" + (f" ±{sp * 100:.0f}%" if sp is not None and m is not None else "")
                + used_note.get((b, s), "") + " |")
        row += (f" **{r:.2f}** |" if r is not None and r < (0.95 if unit == "tps" else 0.90) and s == "cmk"
                else f" {r:.2f} |" if r is not None else " – |")
    add(row)
add("")
add("![ratios](ratios.png)")
add("")

# start-up deltas
if med("startup_ready", "plain") is not None:
    add("Start-up, added to plain's (median of the polled measurement): " + ", ".join(
        f"{LABEL[s]} {1000 * (med('startup_ready', s) - med('startup_ready', 'plain')):+.0f} ms"
        for s in others if med("startup_ready", s) is not None) + ".")
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
            "checksums and header work for data pages (src/pg/page_cipher.c's sequence), the WAL page format of "
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
add(f"- **Systems**: the same Debian PostgreSQL 15 binaries and the same settings; each system has its own "
    f"fresh cluster, created once at the start of the run (`initdb --data-checksums --locale=C`). "
    f"*plain*: no extension. *cmk*: `shared_preload_libraries = 'cmk'` (a copy of the cmk.so just built and "
    f"installed, found through `dynamic_library_path`, so that another install during the run changes nothing), "
    f"`cmk.key_url = 'file:…/kek.pem'` (RSA {settings.get('BENCH_KEK_BITS')}); it encrypts data pages, "
    f"WAL and temporary files. *gocryptfs*: the plain server with its whole data directory (WAL included) "
    f"inside a gocryptfs mount (default options: AES-256-GCM, 4 KiB blocks, encrypted names; "
    f"mounted by root with `-allow_other`, the ciphertext directory owned by postgres); the ciphertext directory is on the same disk.")
kv_skip = info.get("kv_skipped")
if kv_skip:
    add(f"- **Key Vault emulator**: skipped — {kv_skip}.")
elif "cmk-kv" in present:
    add(f"- **cmk (Key Vault emulator KEK)**: start-up only, on a small cluster of its own with the same settings, "
        f"KEK = RSA {settings.get('BENCH_KEK_BITS')} in test/kv_emulator ({info.get('kv_key', '')}); "
        f"each start signs in (client secret), fetches a token and unwraps the DEK over HTTPS.")
if machine.get("gocryptfs_skipped"):
    add(f"- **gocryptfs skipped**: {machine.get('gocryptfs_skipped')}.")
add(f"- **Rounds**: {settings.get('BENCH_ROUNDS')} rounds, in each round the systems in the order "
    f"{', '.join(settings.get('BENCH_SYSTEMS', '').split())}"
    + (", then the Key Vault start-ups" if "cmk-kv" in present else "")
    + "; only the system under test runs. Each system's round: "
    f"{settings.get('BENCH_STARTS')} × start-up with `pg_ctl start -w` and {settings.get('BENCH_STARTS')} × polled start-up "
    f"(each after a clean `pg_ctl stop -m fast`), start, {settings.get('BENCH_WARMUP')} s of untimed pgbench -S, "
    f"pgbench -S, CHECKPOINT, pgbench tpcb-like, CHECKPOINT, WAL write, COPY (into a new table after a CHECKPOINT; "
    f"dropped afterwards), sort, stop.")
add(f"- **Settings** (all systems): shared_buffers = {settings.get('BENCH_SHARED_BUFFERS')}, max_wal_size = 8GB, "
    f"checkpoint_timeout = 30min (no checkpoint starts inside a measurement by itself), fsync and "
    f"synchronous_commit on, wal_level replica, autovacuum on, everything else Debian's initdb defaults.")
add(f"- **pgbench**: scale {settings.get('BENCH_SCALE')} (database {info.get('db_size', '?')}, pgbench_accounts "
    f"{info.get('accounts_size', '?')} with its index), several times shared_buffers but in the page cache, "
    f"so most reads miss shared buffers and cmk decrypts a page for each of those misses. "
    f"`pgbench -n -c {clients} -j {jobs} -T {T}`; tps without initial connection time.")
add(f"- **COPY**: `COPY copy_t FROM '<file>' (FORMAT csv)` run by the server; the file, "
    f"{mb(info.get('copy_csv_bytes'))} ({copy_rows} rows of bigint, int, 64-character text, timestamptz), "
    f"was written once from generate_series into {settings.get('BENCH_CSV_DIR')} (tmpfs: reading it costs no disk I/O). "
    f"The table is WAL-logged: {info.get('copy_wal_mb_plain', '?')} MB of WAL, table "
    f"{info.get('copy_table_size_plain', '?')} (plain, round 1). Time = the COPY statement.")
add(f"- **WAL write**: `SELECT count(pg_logical_emit_message(true, 'cmk-bench', repeat('x', 65536))) "
    f"FROM generate_series(1, {int(settings.get('BENCH_WAL_MB', '0')) * 16})` "
    f"({info.get('wal_write_mb_plain', '?')} MB of WAL), whose commit flushes it all: WAL insertion, "
    f"XLogWrite (where cmk encrypts each WAL page) and the segment fsyncs, nothing else.")
add(f"- **Sort**: `SET work_mem = '{settings.get('BENCH_WORK_MEM')}'; SET max_parallel_workers_per_gather = 0; "
    f"SELECT count(*) FROM (SELECT k FROM sort_src ORDER BY k) s` over {sort_rows} rows of md5 text "
    f"(table {info.get('sort_src_size', '?')}, read through a ring buffer, so every page is read and, "
    f"with cmk, decrypted); plan: `{info.get('sort_plan', '?')}`.")
add("- **Start-up**: a clean shutdown before each start, so no recovery; with cmk the postmaster reads "
    "the keyring and unwraps the DEK with the KEK before it accepts connections.")
gate_path = os.path.join(raw, "gate.csv")
if os.path.exists(gate_path):
    gates = list(csv.DictReader(open(gate_path, encoding="utf-8")))
    limit = float(settings.get("BENCH_QUIET_BUSY", "0.2") or 0.2)
    busy = [g for g in gates if float(g["busy"] or 0) > limit]
    waited = sum(int(g["waited"] or 0) for g in gates)
    add(f"- **Shared machine**: other engineers build and test on this machine during the run. Before each "
        f"system's round (and before the cipher benchmark: {machine.get('cipher_gate', '?')}) the suite waits "
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
        f"ERROR/FATAL/PANIC in cmk's server log (besides background workers ended by the fast shutdowns): "
        f"{info.get('cmk_log_errors') or 'none'}. "
        f"{info.get('cmk_keyring', '')}")
add("")

add("## All samples")
add("")
add(f"[n%] after a sample: other processes took n% of all CPU time during it (above {FOREIGN_MAX:.0%}: "
    "left out of the median when possible).")
add("")
rounds = sorted({int(x["round"]) for x in samples})
add("| benchmark | system | " + " | ".join(f"round {i}" for i in rounds) + " |")
add("|---|---|" + "---:|" * len(rounds))
for b, unit, _ in BENCHES:
    for s in present:
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
        add(f"| {SHORT[b]} | {s} | " + " | ".join(cells) + " |")
add("")
add("Files: `latest.csv` (medians, ranges and ratios), `samples.csv` (every measurement), "
    "`ratios.png` (the chart). Raw page-cipher output:")
add("")
add("```")
add(cipher.strip())
add("```")
add("")
open(os.path.join(out, "latest.md"), "w", encoding="utf-8").write("\n".join(L))
