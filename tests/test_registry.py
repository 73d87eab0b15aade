"""Model strings (perceptual_sim.models.registry): what each resolves to, in which order, and what an unknown one says.

Order: a bundled name, an LPIPS reference made by ``download``, ``hf-hub:``, then a local path.
Hub downloads themselves are tested in test_hub.py.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from helpers import make_model

from perceptual_sim.models.card import ModelNotFoundError
from perceptual_sim.models.registry import (
    DEFAULT_MODEL,
    DOWNLOADABLE,
    PINNED,
    bundled_dir,
    bundled_names,
    list_models,
    resolve,
)


@pytest.fixture
def elsewhere(tmp_path, monkeypatch) -> Path:
    """An empty working folder and download cache."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path


def test_the_bundled_models_are_listed_with_the_default_among_them():
    names = bundled_names()
    assert DEFAULT_MODEL in names and "lpips-alex" in names and names == sorted(names)
    assert [card.name for card in list_models()] == names


def test_a_bundled_name_wins_over_a_local_folder_of_that_name(elsewhere):
    shutil.copytree(Path(make_model(elsewhere / "made", name="impostor")).parent, elsewhere / DEFAULT_MODEL)
    card, tensors = resolve(DEFAULT_MODEL)
    assert card.name == DEFAULT_MODEL and tensors == bundled_dir() / f"{DEFAULT_MODEL}.safetensors"
    assert resolve(f"./{DEFAULT_MODEL}")[0].name == "impostor"  # a path names the folder


def test_a_downloadable_reference_is_found_in_the_download_folder_only(elsewhere, monkeypatch):
    name = DOWNLOADABLE[0]
    (elsewhere / name).mkdir()
    make_model(elsewhere / name, name=name)  # a local folder of that name is not what the name means
    with pytest.raises(ModelNotFoundError, match=re.escape(f"model {name!r} is not downloaded (looked for "
                                                           f"{elsewhere / 'cache' / 'perceptual_sim' / 'models'}")):
        resolve(name)
    made = make_model(elsewhere / "cache" / "perceptual_sim" / "models" / name, name=name)
    card = resolve(str(made))[0]
    monkeypatch.setitem(PINNED, name, (card.arch, card.arch_args, card.sha256))  # only what the name is pinned to loads
    assert resolve(name) == (card, made.with_suffix(".safetensors"))


def test_local_paths_name_a_card_its_tensor_file_or_a_folder(elsewhere):
    card = make_model(elsewhere / "one", name="one")
    for spelling in (card, card.with_suffix(".safetensors"), card.parent):
        found, tensors = resolve(str(spelling))
        assert found.name == "one" and tensors == card.with_suffix(".safetensors"), spelling
    folder = elsewhere / "hub-layout"
    folder.mkdir()
    shutil.copy(card, folder / "card.json")
    shutil.copy(card.with_suffix(".safetensors"), folder / "model.safetensors")
    make_model(folder, name="ignored")  # card.json + model.safetensors come first
    assert resolve(str(folder)) == (resolve(str(card))[0], folder / "model.safetensors")


def test_folders_with_no_model_or_several_say_so(elsewhere):
    (elsewhere / "empty").mkdir()
    with pytest.raises(ModelNotFoundError, match="holds no model: expected card.json \\+ model.safetensors"):
        resolve(str(elsewhere / "empty"))
    make_model(elsewhere / "two", name="b")
    make_model(elsewhere / "two", name="a", seed=1)
    with pytest.raises(ModelNotFoundError, match=re.escape(f"holds 2 models (a, b); pass the card of one, e.g. "
                                                           f"{elsewhere / 'two' / 'a.json'}")):
        resolve(str(elsewhere / "two"))


@pytest.mark.parametrize("model, message", [
    ("no-such-model", (r"unknown model 'no-such-model'\. Use a bundled name \(.*resnet6-pa.*\), one that "
                      r"`perceptual-sim download NAME` fetches \(lpips-alex-unweighted, .*`perceptual-sim list`")),
    ("", "a model must be a non-empty string, got ''"),
    (None, "a model must be a non-empty string, got None"),
    ("hf-hub:no-slash", "Hub model must look like 'hf-hub:ORG/NAME\\[@REVISION\\]', got 'hf-hub:no-slash'"),
    ("hf-hub:org/name/extra@v1", "Hub model must look like"),
])
def test_what_names_no_model_says_what_would(elsewhere, model, message):
    with pytest.raises(ModelNotFoundError, match=message):
        resolve(model)
