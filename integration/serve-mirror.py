#!/usr/bin/env python3
"""Serves a release mirror directory over plain HTTP on 127.0.0.1 only.

Unlike `python3 -m http.server`, it honours `Range: bytes=N-` / `bytes=N-M` (206 with
Content-Range, 416 past the end), so kubesup's resume path can be exercised against it, and it
sends file bodies with sendfile(2), so it is not the bottleneck of a benchmark.

Usage:
  serve-mirror.py [--port N] [--daemon] DIR
Prints one line, `url=http://127.0.0.1:PORT port=PORT pid=PID`, once it is listening.
With --daemon it returns after that line, leaving the server running in the background; stop
it with `kill PID`. Port 0 (the default) picks a free port.
"""

import argparse
import os
import re
import sys
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

RANGE_RE = re.compile(r"^bytes=(\d+)-(\d*)$")


class Handler(SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet: a benchmark makes many requests
        if os.environ.get("SERVE_MIRROR_VERBOSE"):
            super().log_message(fmt, *args)

    def send_head(self):
        self._range = None
        path = self.translate_path(self.path)
        if os.path.isdir(path):
            return super().send_head()
        try:
            f = open(path, "rb")
        except OSError:
            self.send_error(HTTPStatus.NOT_FOUND, "File not found")
            return None
        size = os.fstat(f.fileno()).st_size
        start, end = 0, size - 1
        status = HTTPStatus.OK
        rng = self.headers.get("Range")
        if rng:
            m = RANGE_RE.match(rng.strip())
            if m:
                start = int(m.group(1))
                if m.group(2):
                    end = min(int(m.group(2)), size - 1)
                if start >= size or start > end:
                    f.close()
                    self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
                    self.send_header("Content-Range", f"bytes */{size}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return None
                status = HTTPStatus.PARTIAL_CONTENT
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Accept-Ranges", "bytes")
        if status == HTTPStatus.PARTIAL_CONTENT:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        self._range = (start, end - start + 1)
        return f

    def copyfile(self, source, outputfile):
        if self._range is None:  # a directory listing (in memory)
            return super().copyfile(source, outputfile)
        start, count = self._range
        self.wfile.flush()
        try:
            self.connection.sendfile(source, offset=start, count=count)
        except (BrokenPipeError, ConnectionResetError):
            pass


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--daemon", action="store_true")
    a = ap.parse_args()
    if not os.path.isdir(a.dir):
        sys.exit(f"serve-mirror: {a.dir} is not a directory")
    directory = os.path.abspath(a.dir)

    class H(Handler):
        def __init__(self, *args, **kw):
            super().__init__(*args, directory=directory, **kw)

    # 127.0.0.1 only: a test mirror must never be reachable from the network.
    server = ThreadingHTTPServer(("127.0.0.1", a.port), H)
    server.daemon_threads = True
    port = server.server_address[1]
    if a.daemon:
        pid = os.fork()
        if pid:
            print(f"url=http://127.0.0.1:{port} port={port} pid={pid}", flush=True)
            os._exit(0)
        os.setsid()
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
    else:
        print(f"url=http://127.0.0.1:{port} port={port} pid={os.getpid()}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
