"""The README's first minute, literally: a fresh clone, `make run`, the printed URL and key, the openai SDK.

The clone is of the code as it stands in the working tree (committed or not); its `.venv` and
`node_modules` are symlinks to the shared installs, so `make run` finds its dependencies installed.
"""

import os
import re
import shlex
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import openai
import pytest

from tests.gateway import _free_port

ROOT = Path(__file__).resolve().parent.parent
# Variables of the test run that a newcomer's shell would not have.
# PROMETHEUS_MULTIPROC_DIR: settings set it for this test process; a clean clone's `make run` chooses its own
# (and empties it at start, which must never be the metric files of the test session itself).
UNSET = ("PORT", "DATABASE_URL", "REDIS_URL", "TOLLGATE_DATA_DIR", "TOLLGATE_PUBLIC_URL", "PYTEST_XDIST_WORKER",
         "DJANGO_SETTINGS_MODULE", "CELERY_TASK_ALWAYS_EAGER", "TOLLGATE_DEMO_FIRST_BYTE_MS", "TOLLGATE_DEMO_CHUNK_MS",
         "PROMETHEUS_MULTIPROC_DIR")


def _git(*args, cwd):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def clean_clone(tmp_path):
    """`git clone` of this repository with the working tree's changes laid over it and committed."""
    clone = tmp_path / "tollgate"
    _git("clone", "--quiet", str(ROOT), str(clone), cwd=tmp_path)
    for line in _git("ls-files", "--deleted", cwd=ROOT).splitlines():
        (clone / line).unlink(missing_ok=True)
    for line in _git("ls-files", "--cached", "--others", "--exclude-standard", cwd=ROOT).splitlines():
        source = ROOT / line
        if source.is_file():
            (clone / line).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, clone / line)
    _git("add", "-A", cwd=clone)
    _git("-c", "user.name=test", "-c", "user.email=test@localhost", "commit", "--quiet", "--allow-empty", "-m", "working tree", cwd=clone)
    for shared in (".venv", "node_modules"):
        (clone / shared).symlink_to(os.path.realpath(ROOT / shared))
    # A real install is a folder, which .gitignore covers; these symlinks are this test's doing.
    with open(clone / ".git" / "info" / "exclude", "a") as exclude:
        exclude.write(".venv\nnode_modules\n")
    # Older than the installs' markers, so make does not reinstall into the shared folders.
    for manifest in ("requirements.txt", "package.json"):
        os.utime(clone / manifest, (0, 0))
    return clone


class Output:
    """Collects a process's merged output in a thread so it can be searched while it runs."""

    def __init__(self, stream):
        self.lines: list[str] = []
        self.thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self.thread.start()

    def _read(self, stream):
        for line in stream:
            self.lines.append(line)

    def search(self, pattern: str, timeout: float) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if match := re.search(pattern, line):
                    return match
            time.sleep(0.1)
        raise AssertionError(f"{pattern!r} not printed within {timeout} s; output:\n" + "".join(self.lines[-80:]))


def _stop(process: subprocess.Popen) -> int:
    """SIGINT to the whole group, as Ctrl-C in a terminal does; honcho stops its processes and exits."""
    os.killpg(process.pid, signal.SIGINT)
    try:
        return process.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)
        raise


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_make_run_answers_at_the_printed_url_from_a_clean_clone(clean_clone):
    port = _free_port()  # 8000 may be taken on a shared machine; the default is checked below
    env = {name: value for name, value in os.environ.items() if name not in UNSET}
    env["TOLLGATE_PORT"] = str(port)
    process = subprocess.Popen(
        ["make", "run"], cwd=clean_clone, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )
    output = Output(process.stdout)
    try:
        url = output.search(r"Dashboard: (http://\S+?)/?\s", timeout=240).group(1)
        secret = output.search(r"Virtual key \(shown once\): (tg-\S+)", timeout=10).group(1)
        assert url == f"http://127.0.0.1:{port}"
        client = openai.OpenAI(base_url=url + "/v1", api_key=secret, max_retries=0, timeout=10)
        deadline = time.monotonic() + 120
        while True:
            try:
                reply = client.chat.completions.create(model="demo", messages=[{"role": "user", "content": "Hello"}])
                break
            except openai.APIConnectionError:
                assert process.poll() is None, "make run exited:\n" + "".join(output.lines[-80:])
                assert time.monotonic() < deadline, "nothing answered at the printed URL:\n" + "".join(output.lines[-80:])
                time.sleep(0.5)
        assert "You said: Hello" in reply.choices[0].message.content
        assert reply.usage.prompt_tokens > 0
    finally:
        if process.poll() is None:
            _stop(process)
    output.thread.join(10)
    assert not _group_alive(process.pid), "a process of make run outlived it"
    assert _git("status", "--porcelain", "--untracked-files=all", cwd=clean_clone) == ""


def test_the_web_process_listens_on_8000_by_default_although_honcho_sets_port():
    """honcho gives every process PORT=5000; the bind address must not come from it."""
    env = {name: value for name, value in os.environ.items() if name not in UNSET and not name.startswith("TOLLGATE_")}
    env["PORT"] = "5000"
    for procfile, host in (("Procfile.dev", "127.0.0.1"), ("Procfile", "0.0.0.0")):
        web = next(line for line in (ROOT / procfile).read_text().splitlines() if line.startswith("web:"))
        command = subprocess.run(["sh", "-c", "echo " + web.removeprefix("web:")], env=env, capture_output=True, text=True, check=True).stdout
        words = shlex.split(command)
        assert words[words.index("--port") + 1] == "8000", procfile
        assert words[words.index("--host") + 1] == host, procfile
        env_bound = subprocess.run(["sh", "-c", "echo " + web.removeprefix("web:")], env={**env, "TOLLGATE_HOST": "10.0.0.5", "TOLLGATE_PORT": "9000"},
                                   capture_output=True, text=True, check=True).stdout.split()
        assert env_bound[env_bound.index("--host") + 1] == "10.0.0.5" and env_bound[env_bound.index("--port") + 1] == "9000", procfile


def test_public_url_follows_the_port_served():
    code = "from django.conf import settings; print(settings.TOLLGATE_PUBLIC_URL)"
    env = {name: value for name, value in os.environ.items() if name not in UNSET and not name.startswith("TOLLGATE_")}
    env["DJANGO_SETTINGS_MODULE"] = "config.settings"
    env["TOLLGATE_DATA_DIR"] = os.environ.get("TOLLGATE_DATA_DIR", str(ROOT / "data"))
    run = lambda **extra: subprocess.run(  # noqa: E731
        [str(ROOT / ".venv/bin/python"), "-c", "import django; django.setup(); " + code], cwd=ROOT,
        env={**env, **extra}, capture_output=True, text=True, check=True,
    ).stdout.strip()
    assert run(PORT="5000") == "http://127.0.0.1:8000"
    assert run(TOLLGATE_PORT="9000") == "http://127.0.0.1:9000"
    assert run(TOLLGATE_HOST="0.0.0.0", TOLLGATE_PORT="9000") == "http://127.0.0.1:9000"
