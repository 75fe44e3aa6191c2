"""`make lab`: JupyterLab's server starts, lists the notebooks through its REST API, and serves each one
exactly as committed, with the installed kernel's name (so opening one does not mark it modified)."""
import json
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from mtl_utils import paths
from tools.run_notebooks import kernel_display_name

TOKEN = "mtl-test-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str):
    request = urllib.request.Request(url, headers={"Authorization": f"token {TOKEN}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def server():
    port = free_port()
    command = [str(Path(sys.executable).with_name("jupyter")), "lab", "--no-browser", f"--port={port}",
               "--ip=127.0.0.1", f"--IdentityProvider.token={TOKEN}", f"--notebook-dir={paths.NOTEBOOKS_DIR}",
               "--ServerApp.log_level=ERROR", "--allow-root"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                get(f"{base}/api/status")
                break
            except OSError:
                time.sleep(0.5)
        else:
            raise AssertionError("JupyterLab did not start within 60 s")
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_lab_lists_and_serves_the_notebooks_unmodified(server):
    listing = {item["name"] for item in get(f"{server}/api/contents/")["content"]}
    committed = sorted(p.name for p in paths.NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))
    assert set(committed) <= listing
    for name in committed:
        served = get(f"{server}/api/contents/{name}?content=1")["content"]
        for cell in served["cells"]:  # the server's run-time trust flag, never written to the file
            cell["metadata"].pop("trusted", None)
        on_disk = nbformat.read(paths.NOTEBOOKS_DIR / name, as_version=4)
        assert served["metadata"]["kernelspec"]["display_name"] == kernel_display_name(), name
        assert served == json.loads(json.dumps(on_disk)), f"{name} changes when JupyterLab loads it"


def test_the_news_pop_up_is_off(server):
    """`make` (and the Docker image) disable JupyterLab's announcements plugin, which asks on every start
    whether to fetch news from the internet: the page JupyterLab serves lists it as disabled."""
    request = urllib.request.Request(f"{server}/lab", headers={"Authorization": f"token {TOKEN}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        page = response.read().decode()
    config = json.loads(re.search(r'<script id="jupyter-config-data" type="application/json">(.*?)</script>',
                                  page, re.S).group(1))
    assert "@jupyterlab/apputils-extension:announcements" in config["disabledExtensions"], (
        "`make lab` disables the plugin in the virtual environment")
