"""snnlib._compile: what the compiler prints on a machine without a GPU."""

import logging
import os
import shutil
import subprocess
import sys

import pytest

import snnlib._compile  # noqa: F401  (installs the filter)


def test_the_no_cuda_runtime_notice_is_dropped_and_other_messages_are_kept(caplog):
    log = logging.getLogger("torch.utils.cpp_extension")
    with caplog.at_level(logging.WARNING, logger="torch.utils.cpp_extension"):
        log.warning("No CUDA runtime is found, using CUDA_HOME='%s'", "/usr/local/cuda")
        log.warning("Something else about %s", "the compiler")
    messages = [r.getMessage() for r in caplog.records if r.name == "torch.utils.cpp_extension"]
    assert messages == ["Something else about the compiler"]


@pytest.mark.skipif(shutil.which("c++") is None and shutil.which("g++") is None,
                    reason="torch.compile needs a C++ compiler on the CPU")
def test_a_first_compilation_in_a_fresh_cache_prints_nothing_on_stderr(tmp_path):
    # (it can fail only where a CUDA toolkit is installed without a GPU, as on our CI)
    code = ("import torch\n"
            "from snnlib._compile import CompiledOrEager\n"
            "f = CompiledOrEager(lambda x: x * 2 + 1, 'a test function')\n"
            "print(f(torch.ones(3)).tolist())\n")
    env = dict(os.environ, TORCHINDUCTOR_CACHE_DIR=str(tmp_path / "inductor"))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[3.0, 3.0, 3.0]"
    assert done.stderr.strip() == ""
