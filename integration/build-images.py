#!/usr/bin/env python3
"""Builds the two container images the pod tests need, with no registry:

  pause.tar    kubesup.local/pause:3.2     /pause, from build/pause/linux/pause.c of the
                                           Kubernetes source tree (gcc -static)
  busybox.tar  kubesup.local/busybox:1.35  Debian's busybox-static as /bin/busybox, with
                                           /bin/sh and the applets the tests use linked to it

Each is a docker-archive tar (manifest.json, a config JSON with the layer's diff_id, and one
layer tar), which `ctr -n k8s.io images import` reads. The layers are built reproducibly
(sorted names, fixed mtime and owner), so a rebuild yields the same image IDs.

Usage: build-images.py [OUT_DIR]   (default $KUBESUP_TESTBED_CACHE/images)
Prints the output directory. Skips an image whose tar is newer than its inputs.
"""

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile

CACHE = os.environ.get("KUBESUP_TESTBED_CACHE", "/var/cache/kubesup-testbed")
PAUSE_SRC = os.path.join(CACHE, "kubernetes-v1.20.2", "src", "pause.c")
BUSYBOX = "/bin/busybox"
APPLETS = ["sh", "hostname", "httpd", "nc", "printf", "mkdir", "sleep", "cat"]


def layer(files, links):
    """A tar of `files` ({path: (bytes, mode)}) and `links` ({path: target})."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        dirs = set()
        for path in list(files) + list(links):
            parts = path.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                dirs.add("/".join(parts[:i]))
        for d in sorted(dirs):
            info = tarfile.TarInfo(d)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
            tar.addfile(info)
        for path in sorted(files):
            data, mode = files[path]
            info = tarfile.TarInfo(path)
            info.size, info.mode, info.mtime = len(data), mode, 0
            tar.addfile(info, io.BytesIO(data))
        for path in sorted(links):
            info = tarfile.TarInfo(path)
            info.type, info.linkname, info.mode, info.mtime = tarfile.SYMTYPE, links[path], 0o777, 0
            tar.addfile(info)
    return buf.getvalue()


def image(out, tag, layer_bytes, entrypoint, cmd=None):
    diff_id = "sha256:" + hashlib.sha256(layer_bytes).hexdigest()
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Entrypoint": entrypoint, "Cmd": cmd, "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created_by": "kubesup integration/build-images.py"}],
    }
    config_bytes = json.dumps(config, sort_keys=True).encode()
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    manifest = [{"Config": config_name, "RepoTags": [tag], "Layers": ["layer.tar"]}]
    tmp = out + ".tmp"
    with tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in [
            ("manifest.json", json.dumps(manifest).encode()),
            (config_name, config_bytes),
            ("layer.tar", layer_bytes),
        ]:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    os.replace(tmp, out)


def fresh(out, *inputs):
    return os.path.exists(out) and all(
        os.path.getmtime(out) >= os.path.getmtime(i) for i in inputs + (__file__,)
    )


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(CACHE, "images")
    os.makedirs(out_dir, exist_ok=True)
    for needed in (PAUSE_SRC, BUSYBOX):
        if not os.path.exists(needed):
            sys.exit(f"build-images: {needed} is missing; run integration/setup-testbed.sh")

    pause_tar = os.path.join(out_dir, "pause.tar")
    if not fresh(pause_tar, PAUSE_SRC):
        with tempfile.TemporaryDirectory() as tmp:
            binary = os.path.join(tmp, "pause")
            subprocess.run(
                ["gcc", "-Os", "-static", "-o", binary, PAUSE_SRC, "-DVERSION=3.2-kubesup"],
                check=True,
            )
            subprocess.run(["strip", binary], check=True)
            with open(binary, "rb") as f:
                data = f.read()
        image(pause_tar, "kubesup.local/pause:3.2", layer({"pause": (data, 0o755)}, {}), ["/pause"])

    busybox_tar = os.path.join(out_dir, "busybox.tar")
    if not fresh(busybox_tar, BUSYBOX):
        with open(BUSYBOX, "rb") as f:
            data = f.read()
        links = {f"bin/{a}": "busybox" for a in APPLETS}
        image(
            busybox_tar,
            "kubesup.local/busybox:1.35",
            layer({"bin/busybox": (data, 0o755)}, links),
            None,
            ["/bin/sh"],
        )
    print(out_dir)


if __name__ == "__main__":
    main()
