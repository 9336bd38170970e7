#!/usr/bin/env python3
"""cold_run.py CMD...: one run of a command with its progress lines timestamped (through a pty),
its wall time, user + sys CPU time (wait4) and peak RSS, split into anonymous and file-backed
(/proc/PID/status polled every 20 ms). Used for the packed q8_0 load figures (docs/performance.md)."""
import os, pty, sys, time, select, re
args = sys.argv[1:]
t0 = time.time()
pid, fd = pty.fork()
if pid == 0:
    os.execv(args[0], args)
buf = b''; lines = []; peak = {'RssAnon': 0, 'RssFile': 0, 'VmRSS': 0}
status = None
while True:
    r, _, _ = select.select([fd], [], [], 0.02)
    try:
        with open(f'/proc/{pid}/status') as f:
            for l in f:
                k = l.split(':')[0]
                if k in peak: peak[k] = max(peak[k], int(l.split()[1]))
    except Exception: pass
    if r:
        try: c = os.read(fd, 4096)
        except OSError: c = b''
        if not c: break
        for ch in c:
            b = bytes([ch])
            if b in (b'\r', b'\n'):
                s = re.sub(r'\x1b\[[0-9;]*[A-Za-z]', '', buf.decode(errors='replace')).strip()
                if s: lines.append((time.time() - t0, s))
                buf = b''
            else: buf += b
res = os.wait4(pid, 0)
wall = time.time() - t0
ru = res[2]
for t, s in lines: print(f'{t:7.2f} {s}')
print(f'RESULT wall {wall:.2f} s cpu {ru.ru_utime + ru.ru_stime:.2f} s (user {ru.ru_utime:.2f} sys {ru.ru_stime:.2f}) '
      f'peak RSS {ru.ru_maxrss/1e6:.2f} GB; polled peaks: anon {peak["RssAnon"]/1e6:.2f} GB file {peak["RssFile"]/1e6:.2f} GB; exit {os.waitstatus_to_exitcode(res[1])}')
