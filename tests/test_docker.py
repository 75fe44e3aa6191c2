"""The Dockerfile, parsed by a Dockerfile parser (Docker cannot run here): an exec-form CMD that is valid JSON,
a CPU-only torch, a .dockerignore that keeps local state out, and the README's Docker commands available."""
import json
import re

from dockerfile_parse import DockerfileParser

from mtl_utils import paths

DOCKERFILE = DockerfileParser(path=str(paths.REPO_ROOT / "Dockerfile"))


def instructions(name):
    return [i for i in DOCKERFILE.structure if i["instruction"] == name]


def test_cmd_is_exec_form_json():
    cmd = instructions("CMD")
    assert len(cmd) == 1
    argv = json.loads(cmd[0]["value"])  # exec form is a JSON array; a trailing comma would fail here
    assert isinstance(argv, list) and all(isinstance(a, str) for a in argv)
    assert argv[:2] == ["jupyter", "lab"] and "--ip=0.0.0.0" in argv


def test_torch_is_the_cpu_build():
    run = " ".join(i["value"] for i in instructions("RUN"))
    assert '"torch==2.13.0+cpu"' in run and "download.pytorch.org/whl/cpu" in run
    assert run.index("torch==2.13.0+cpu") < run.index("-r requirements.txt")  # before anything that needs torch


def test_dockerignore_keeps_local_state_out():
    ignored = {line.strip() for line in (paths.REPO_ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    for path in (".venv/", ".git/", "outputs/", "data/cache/", "build/"):
        assert path in ignored, path


def test_readme_docker_commands_exist_in_the_image():
    readme = (paths.REPO_ROOT / "README.md").read_text()
    makefile = (paths.REPO_ROOT / "Makefile").read_text()
    apt = " ".join(i["value"] for i in instructions("RUN") if "apt-get" in i["value"])
    requirements = (paths.REPO_ROOT / "requirements.txt").read_text()
    commands = re.findall(r"docker run --rm (?:-p \S+ )?mtl-notebooks ?([^\n#]*)", readme)
    assert commands, "the README gives no docker run command"
    for command in commands:
        words = command.split()
        if not words:  # the image's CMD: JupyterLab
            assert "jupyterlab==" in requirements
        elif words[0] == "make":
            assert "make" in apt.split(), "make is not installed in the image"
            assert re.search(rf"^{words[1]}:", makefile, re.M), f"no make target {words[1]}"
        else:
            raise AssertionError(f"unchecked command in the README: {command}")
