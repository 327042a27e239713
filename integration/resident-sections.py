#!/usr/bin/env python3
"""Which ELF sections of a running process's executable are resident (mapped in its page
tables), from /proc/PID/pagemap. Used by rss-master.sh; not a test.

    integration/resident-sections.py PID
"""
import os
import re
import struct
import subprocess
import sys

PAGE = os.sysconf("SC_PAGE_SIZE")


def sections(exe):
    """(name, file offset, size) of each section, from readelf."""
    out = subprocess.run(["readelf", "-SW", exe], capture_output=True, text=True, check=True)
    found = []
    for line in out.stdout.splitlines():
        m = re.match(r"\s*\[\s*\d+\]\s+(\S+)\s+\S+\s+[0-9a-f]+\s+([0-9a-f]+)\s+([0-9a-f]+)", line)
        if m and m.group(1) != "NULL":
            found.append((m.group(1), int(m.group(2), 16), int(m.group(3), 16)))
    return found


def main():
    pid = int(sys.argv[1])
    exe = os.readlink(f"/proc/{pid}/exe")
    secs = sections(exe)
    resident, private = {}, {}
    with open(f"/proc/{pid}/pagemap", "rb") as pagemap, open(f"/proc/{pid}/maps") as maps:
        for line in maps:
            f = line.split()
            if len(f) < 6 or f[5] != exe:
                continue
            lo, hi = (int(x, 16) for x in f[0].split("-"))
            offset = int(f[2], 16)
            for addr in range(lo, hi, PAGE):
                pagemap.seek(addr // PAGE * 8)
                entry = struct.unpack("<Q", pagemap.read(8))[0]
                if not entry >> 63 & 1:  # not present
                    continue
                at = offset + addr - lo
                name = next((s[0] for s in secs if s[1] <= at < s[1] + max(s[2], 1)), "(other)")
                resident[name] = resident.get(name, 0) + PAGE // 1024
                if not entry >> 61 & 1:  # not file-backed: a private copy (relocated data)
                    private[name] = private.get(name, 0) + PAGE // 1024
    sizes = {s[0]: s[2] // 1024 for s in secs}
    print(f"resident pages of {exe}, by section:")
    for name, kb in sorted(resident.items(), key=lambda x: -x[1]):
        note = f"  ({private[name]} kB private copy)" if name in private else ""
        print(f"{kb:8d} kB of {sizes.get(name, 0):6d} kB  {name}{note}")
    print(f"{sum(resident.values()):8d} kB  total")


if __name__ == "__main__":
    main()
