"""Scale-out: the launch environment, and ``dirs`` / ``eval bapps|proxy`` under torchrun (2 CPU processes, gloo)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import LAUNCH_VARS, make_bapps, save_random_image, torchrun

from perceptual_sim import distributed
from perceptual_sim.cli import main

SHARING = """
import json, torch
from perceptual_sim import distributed
with distributed.session(torch.device("cpu")) as device:
    share = distributed.shard(range(7))
    report = {"rank": distributed.rank(), "device": str(device), "share": share,
              "gathered": distributed.gather([10 * i for i in share])}
    # one file per rank: the processes share stdout, where lines from two ranks can interleave
    with open(f"rank{distributed.rank()}.json", "w") as f:
        json.dump(report, f)
"""


# ----------------------------------------------------------------------------- the environment
def test_launch_outside_torchrun_is_one_process(monkeypatch):
    for name in LAUNCH_VARS:
        monkeypatch.delenv(name, raising=False)
    assert distributed.launch() == distributed.Launch(rank=0, world_size=1, local_rank=0)
    assert distributed.is_main()
    assert distributed.shard([1, 2, 3]) == [1, 2, 3] and distributed.gather([1, 2, 3]) == [1, 2, 3]


def test_launch_reads_the_torchrun_variables(monkeypatch):
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert distributed.launch() == distributed.Launch(rank=3, world_size=4, local_rank=1)
    assert distributed.rank() == 3 and not distributed.is_main()


@pytest.mark.parametrize("rank, world, local", [("4", "4", "0"), ("0", "two", "0"), ("0", "2", None)])
def test_launch_rejects_an_inconsistent_environment(monkeypatch, rank, world, local):
    monkeypatch.setenv("RANK", rank)
    monkeypatch.setenv("WORLD_SIZE", world)
    if local is None:
        monkeypatch.delenv("LOCAL_RANK", raising=False)
    else:
        monkeypatch.setenv("LOCAL_RANK", local)
    with pytest.raises(ValueError, match="RANK"):
        distributed.launch()


# ----------------------------------------------------------------------------- torchrun
@pytest.mark.distributed
def test_each_process_gets_its_share_and_everyone_gets_all_in_order(tmp_path):
    (tmp_path / "sharing.py").write_text(SHARING)
    result = torchrun("sharing.py", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    reports = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["rank"] for r in reports] == [0, 1]
    assert [r["share"] for r in reports] == [[0, 2, 4, 6], [1, 3, 5]]
    assert all(r["gathered"] == [10 * i for i in range(7)] and r["device"] == "cpu" for r in reports)


@pytest.mark.distributed
def test_dirs_under_torchrun_writes_what_one_process_writes(tiny_card, tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    for i in range(9):  # two sizes, batches of 2: five batches, dealt 3 + 2
        size = (32, 48) if i % 3 else (40, 40)
        save_random_image(a / f"s{i % 2}" / f"{i}.png", i, size)
        save_random_image(b / f"s{i % 2}" / f"{i}.png", 100 + i, size, mode="L" if i == 4 else "RGB")
    (b / "s1/5.png").write_bytes(b"not a png")
    save_random_image(a / "only_a.png", 50, (32, 48))
    common = ["dirs", a, b, "--model", tiny_card, "--batch-size", "2", "--force"]

    assert main([*map(str, common), "--csv", str(tmp_path / "one.csv"), "--json", str(tmp_path / "one.json")]) == 1
    one = capsys.readouterr()
    two = torchrun("-m", "perceptual_sim.cli", *common, "--csv", "two.csv", "--json", "two.json", cwd=tmp_path)

    assert two.returncode == 1, two.stderr
    assert (tmp_path / "two.csv").read_bytes() == (tmp_path / "one.csv").read_bytes()
    one_json, two_json = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("one", "two"))
    assert one_json == two_json and one_json["summary"]["count"] == 8
    assert two.stdout == one.out
    for line in ("note: greyscale image", "error: pairs that could not be scored (1)", "only_a.png"):
        assert two.stderr.count(line) == one.err.count(line) == 1, two.stderr
    assert "rank 1" not in two.stderr


def _assert_eval_under_torchrun_matches_one_process(common: list, tmp_path: Path, capsys) -> None:
    """``perceptual-sim COMMON --json F`` here and under torchrun (2 processes): same JSON, same stdout."""
    assert main([*map(str, common), "--json", str(tmp_path / "one.json")]) == 0
    one = capsys.readouterr()
    two = torchrun("-m", "perceptual_sim.cli", *common, "--json", "two.json", cwd=tmp_path)
    assert two.returncode == 0, two.stderr
    assert json.loads((tmp_path / "two.json").read_text()) == json.loads((tmp_path / "one.json").read_text())
    assert two.stdout == one.out.replace(str(tmp_path / "one.json"), "two.json")


@pytest.mark.distributed
def test_eval_bapps_under_torchrun_gives_the_scores_of_one_process(tiny_card, tmp_path, capsys):
    root = make_bapps(tmp_path / "bapps")
    common = ["eval", "bapps", "--root", root, "--model", tiny_card, "--batch-size", "2"]
    _assert_eval_under_torchrun_matches_one_process(common, tmp_path, capsys)


@pytest.mark.distributed
def test_eval_proxy_under_torchrun_gives_the_scores_of_one_process(tiny_card, tmp_path, monkeypatch, capsys):
    from perceptual_sim.lab.evaluate.metrics import L2Metric, SSIMMetric
    from perceptual_sim.lab.evaluate.proxy import default_cache, judge, make_proxy_set

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for i in range(13):
        save_random_image(tmp_path / "imgs" / f"{i:02d}.png", i, (64, 64))
    # judged here by L2 and SSIM, so that the command finds a judged set and builds no LPIPS judges
    judge(make_proxy_set(tmp_path / "imgs", triplets=9, mono_images=4, cache=default_cache()),
          [("L2", L2Metric()), ("SSIM", SSIMMetric())], progress=False)
    common = ["eval", "proxy", "--images", tmp_path / "imgs", "--triplets", "9", "--mono-images", "4",
              "--model", tiny_card, "--batch-size", "2"]  # 5 triplet batches dealt 3 + 2; 6 x 2 monotonicity jobs
    _assert_eval_under_torchrun_matches_one_process(common, tmp_path, capsys)
