"""One label and one colour per policy (issue 33, item 4): backend/labels.py is the only table, the Api
serves it with the user's files in it, and a user's colour comes from its name alone."""
import shutil
import subprocess
import sys

import pytest

from backend.api import Api
from backend.eviction.custom_policies import PolicyFileError, load_source
from backend.eviction.policies import POLICIES
from backend.labels import BUILT_IN, DATA_COLOURS, MIN_DISTANCE, _distance, label_table, user_colour
from helpers import ROOT

EXAMPLES = ROOT / "examples" / "policies"


def test_every_built_in_has_its_own_label_and_colour():
    labels = [label for label, _, _ in BUILT_IN.values()]
    colours = [colour.lower() for _, colour, _ in BUILT_IN.values()]
    assert len(set(labels)) == len(labels)
    assert len(set(colours)) == len(colours)
    from backend.compress.methods import METHODS

    assert set(METHODS) <= set(BUILT_IN), "a prefill method without a label and colour"
    assert BUILT_IN["sliding_window"][0] == "Sliding Window"  # not "Window attention" / "Sliding window" anywhere


def test_no_built_in_reads_as_sinks_or_heavy_hitters():
    """The header legend's data colours and the control accent are nobody's policy colour (nor near one)."""
    assert min(_distance(c, d) for _, c, _ in BUILT_IN.values() for d in DATA_COLOURS) >= 45


def test_the_simulators_list_reads_its_labels_from_the_table():
    assert {p["name"]: p["label"] for p in POLICIES} == {p["name"]: BUILT_IN[p["name"]][0] for p in POLICIES}


@pytest.mark.parametrize("name", ["h2o_decay", "h2o_rule", "snapkv_file", "lru_rule", "x", "my_policy_2"])
def test_a_user_colour_keeps_clear_of_every_built_in(name):
    colour = user_colour(name)
    taken = [c for _, c, _ in BUILT_IN.values()] + list(DATA_COLOURS)
    assert min(_distance(colour, c) for c in taken) >= MIN_DISTANCE
    assert colour == user_colour(name)


def test_a_user_colour_is_the_same_in_every_process():
    """The window and the browser are separate runs: Python's own hash() is salted per process, sha256 is not."""
    code = "from backend.labels import user_colour; print(user_colour('h2o_decay'))"
    got = {subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                          env={"PYTHONHASHSEED": seed, "PATH": ""}).stdout.strip() for seed in ("1", "2")}
    assert got == {user_colour("h2o_decay")}


def test_a_user_file_may_not_take_a_built_in_prefill_name():
    source = (EXAMPLES / "snapkv.py").read_text(encoding="utf-8").replace('NAME = "snapkv_file"', 'NAME = "snapkv"')
    with pytest.raises(PolicyFileError, match="built-in"):
        load_source(source, "snapkv.py")


def test_label_table_gives_a_user_file_its_label_not_its_name():
    table = label_table([{"name": "h2o_decay", "label": "H2O, decay 0.99"}])
    assert table["h2o_decay"] == {"label": "H2O, decay 0.99", "colour": user_colour("h2o_decay"), "dash": [],
                                  "user": True}
    assert table["full"]["dash"] == [5, 3] and not table["full"]["user"]


def test_the_api_serves_the_table_with_the_loaded_user_files(tmp_path, monkeypatch):
    folder = tmp_path / "policies"
    folder.mkdir()
    for name in ("h2o_decay.py", "snapkv.py"):  # an eviction rule and a prefill (score) file
        shutil.copy(EXAMPLES / name, folder / name)
    monkeypatch.setenv("SINKVIS_POLICY_DIR", str(folder))
    api = Api()
    try:
        res = api.policy_labels()
        assert res["ok"], res
        labels = res["labels"]
        assert labels["h2o_decay"]["label"] == "H2O, decay 0.99"
        assert labels["snapkv_file"]["label"] == "SnapKV (user file)"
        assert labels["h2o_decay"]["colour"] == user_colour("h2o_decay")
        assert labels["sliding_window"] == {"label": "Sliding Window", "colour": BUILT_IN["sliding_window"][1],
                                            "dash": [], "user": False}
        listed = api.eviction_policies()["policies"]
        assert {p["name"]: p["label"] for p in listed} == {p["name"]: labels[p["name"]]["label"] for p in listed}
    finally:
        api._state.jobs.cancel_all(wait=30)
        api._state.policies.unpublish()
