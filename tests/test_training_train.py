"""Stage 1 / stage 2 on a tiny real store: seeded, resumable, torchrun, fp16 export, evaluation, report."""
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from chromdragonn import paths
from chromdragonn.inputs.expression import ExpressionSource
from chromdragonn.nn.weights import load_model, save_weights
from chromdragonn.training.config import HeadWarmup, load_config
from chromdragonn.training.data import FoldData, mean_feature
from chromdragonn.training.evaluate import auprc, evaluate_fold
from chromdragonn.training.export import half_precision_gap, save_weights_fp16
from chromdragonn.training.folds import make_folds, write_folds
from chromdragonn.training.simulate import SimulatedAccessibility, label_region_with_rule
from chromdragonn.training.train import train_stage1, train_stage2

FASTA = paths.EXAMPLE_DIR / "hg19_chr22_1-22000000.fa.gz"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cfg(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("train")
    src = ExpressionSource()
    store = label_region_with_rule(tmp / "store", FASTA, SimulatedAccessibility.default(1), src.matrix(src.contexts),
                                   src.contexts, ["22"], ["22:19000001-19100000"], seed=0)
    write_folds(make_folds(store.contexts, 5, 4, seed=0), tmp / "folds.tsv")
    cfg = {"seed": 0, "store": str(tmp / "store"), "folds_file": str(tmp / "folds.tsv"), "run_dir": str(tmp / "run"),
           "loci": {"valid": ["22:19060001-19080000"], "heldout": ["22:19080001-19100000"]},
           "trunk": "resnet", "device": "cpu", "threads": 1, "eval_batch_size": 16,
           "stage1": {"steps": 2, "batch_size": 4, "eval_every": 2, "eval_bins": 8, "train_bins": 200,
                      "checkpoint_every": 1},
           "stage2": {"steps": 2, "intervals": 2, "contexts_per_interval": 4, "eval_every": 2, "eval_bins": 8,
                      "train_bins": 200, "checkpoint_every": 1},
           "evaluate": {"bins_training_loci": 24, "bins_heldout_loci": 24}}
    (tmp / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    return load_config(tmp / "cfg.yaml")


@pytest.fixture(scope="module")
def cfg_path(cfg) -> Path:
    return Path(cfg.run_dir).parent / "cfg.yaml"


@pytest.fixture(scope="module")
def stage1(cfg):
    torch.set_num_threads(1)
    return train_stage1(cfg, 0, Path(cfg.run_dir) / "fold0" / "stage1", progress=False)


def _state(path):
    return load_model(path)[0].state_dict()


def test_stage1_writes_best_trunk(stage1):
    ck = torch.load(stage1, weights_only=True)
    assert ck["trunk"] == "resnet" and ck["n_tasks"] == 56 - 4 - 12
    assert 0 <= ck["valid_auprc"] <= 1 and ck["best_step"] == 2
    assert "trunk.conv1.weight" in ck["state_dict"]


def test_stage1_select_last_keeps_the_final_trunk(cfg, tmp_path):
    """`stage1.select: last` hands stage 2 the final step's trunk even where an earlier one validated higher."""
    torch.set_num_threads(1)
    last_cfg = replace(cfg, stage1=replace(cfg.stage1, steps=4, eval_every=1, select="last"))
    ck = torch.load(train_stage1(last_cfg, 0, tmp_path / "s1", progress=False), weights_only=True)
    final = torch.load(tmp_path / "s1" / "last.pt", weights_only=True)
    history = final["history"]
    assert ck["best_step"] == 4 and ck["valid_auprc"] == history[-1][2]
    assert all(torch.equal(ck["state_dict"][k], final["model"][k]) for k in final["model"])
    assert final["best_step"] == max(range(4), key=lambda i: history[i][2]) + 1  # last.pt still tracks the best


def test_stage2_is_seeded_and_resumes_exactly(cfg, stage1, tmp_path):
    """4 steps straight == 2 steps, stop, resume to 4 (batches and dropout are seeded per step)."""
    four = replace(cfg, stage2=replace(cfg.stage2, steps=4, eval_every=2))
    two = replace(cfg, stage2=replace(cfg.stage2, steps=2, eval_every=2))
    train_stage2(four, 0, tmp_path / "straight", True, stage1, progress=False)
    train_stage2(two, 0, tmp_path / "resumed", True, stage1, progress=False)
    train_stage2(four, 0, tmp_path / "resumed", True, stage1, progress=False)
    last = {k: torch.load(tmp_path / k / "last.pt", weights_only=True) for k in ("straight", "resumed")}
    s4, sr = last["straight"]["model"], last["resumed"]["model"]
    assert all(torch.equal(s4[k], sr[k]) for k in s4)
    assert last["straight"]["best_score"] == last["resumed"]["best_score"]
    hist = (tmp_path / "resumed" / "history.tsv").read_text().splitlines()
    assert [line.split("\t")[0] for line in hist[1:]] == ["1", "2", "3", "4"]
    # the stage-1 trunk was the starting point; Adam at lr 1e-4 moves each weight <= ~1e-4 per step
    s1 = torch.load(stage1, weights_only=True)["state_dict"]
    assert not torch.equal(s4["trunk.conv1.weight"], s1["trunk.conv1.weight"])
    assert torch.allclose(s4["trunk.conv1.weight"], s1["trunk.conv1.weight"], atol=4 * 1.1e-4)


def test_fp16_weights_predict_like_fp32(cfg, stage1, tmp_path):
    w32 = train_stage2(cfg, 0, tmp_path / "m", True, stage1, progress=False)
    model, genes = load_model(w32)
    w16 = tmp_path / "half.pt"
    save_weights_fp16(model, w16, genes)  # matrices fp16, 1-D tensors fp32
    assert w16.stat().st_size < 0.51 * w32.stat().st_size
    payload = torch.load(w16, weights_only=True)
    assert payload["state_dict"]["head.fc1.weight"].dtype == torch.float16
    assert payload["state_dict"]["head.bn1.running_var"].dtype == torch.float32
    gap = half_precision_gap(w32, w16, FoldData(cfg, 0).store, n=16)
    assert 0 < gap < 1e-3
    all_half = tmp_path / "all_half.pt"
    save_weights(model, all_half, genes, half=True)
    assert half_precision_gap(w32, all_half, FoldData(cfg, 0).store, n=16) > gap  # why 1-D stays fp32


def test_torchrun_two_processes_gloo(cfg, cfg_path, stage1):
    out = Path(cfg.run_dir) / "fold0" / "stage2_with_mean"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29517",
           "-m", "chromdragonn.training", "stage2", "--config", str(cfg_path), "--fold", "0"]
    r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr[-2000:]
    model, genes = load_model(out / "weights.pt")
    assert model.with_mean and len(genes) == model.n_genes
    assert (out / "history.tsv").read_text().count("\n") == 3  # header + 2 steps, written once (rank 0)


def test_evaluate_rows_and_report(cfg, stage1, tmp_path):
    fd = Path(cfg.run_dir) / "fold0"
    nm = train_stage2(cfg, 0, fd / "stage2_no_mean", False, stage1, progress=False)
    wm = fd / "stage2_with_mean" / "weights.pt"
    if not wm.is_file():
        wm = train_stage2(cfg, 0, fd / "stage2_with_mean", True, stage1, progress=False)
    res = evaluate_fold(cfg, 0, wm, nm, fd / "eval", progress=False)
    data = FoldData(cfg, 0)
    for setting in ("training loci", "held-out loci"):
        r = res["settings"][setting]
        assert set(r["methods"]) == {"mean", "weighted_mean", "resnet_expr", "resnet_expr_mean"}
        assert r["pairs"] == 24 * 12
    # the mean baseline is the fold's mean feature (training contexts only), scored with sklearn
    idx = data.sample(data.train_bins, 24, 3)
    y = np.asarray(data.store.labels[idx][:, data.test_ctx])
    m = mean_feature(data.store, data.train_ctx)[idx]
    assert res["settings"]["training loci"]["methods"]["mean"]["auprc"] == pytest.approx(
        auprc(y, np.repeat(m[:, None], y.shape[1], axis=1)))
    from chromdragonn.training.report import write_report

    text = write_report(cfg, cfg.run_dir, tmp_path / "REPORT.md", tmp_path / "figures", ["python -m ..."])
    assert "simulated labels" in text and "0.579" in text and (tmp_path / "figures" / "pr_fold0.png").is_file()
    # the simulated store keeps the rule's probability: its AUPRC (the ceiling) is scored and reported
    p_true = np.load(Path(cfg.store) / "probability.npy")[idx][:, data.test_ctx].astype(np.float64)
    assert res["settings"]["training loci"]["rule_probability"]["auprc"] == pytest.approx(auprc(y, p_true))
    assert "ceiling" in text and "averaged over the fold's test contexts" in text


def test_export_fold_keeps_a_finished_fold_and_ships_it_byte_for_byte(cfg, stage1, tmp_path, monkeypatch):
    """A fold finished in one session is kept whole (training/runs/...): fp16 with-mean weights, evaluation,
    histories and fold.json; the report reads it as it reads the run; export ships those very bytes."""
    import json

    from chromdragonn.errors import ChromDragoNNError
    from chromdragonn.training.export import export_fold, export_run
    from chromdragonn.training.report import write_report

    fd = Path(cfg.run_dir) / "fold0"
    models = {}
    for name, with_mean in (("stage2_with_mean", True), ("stage2_no_mean", False)):
        models[name] = fd / name / "weights.pt"
        if not models[name].is_file():
            train_stage2(cfg, 0, fd / name, with_mean, stage1, progress=False)
    if not (fd / "eval" / "metrics.json").is_file():
        evaluate_fold(cfg, 0, models["stage2_with_mean"], models["stage2_no_mean"], fd / "eval", progress=False)
    runs = tmp_path / "runs"
    export_fold(cfg, cfg.run_dir, 0, runs, command="test")
    kept = runs / "fold0"
    record = json.loads((kept / "fold.json").read_text())
    assert record["stages"]["stage1"] == {"steps": 2, "seconds": record["stages"]["stage1"]["seconds"],
                                          "select": "best", "kept_step": 2, "seed": 0,
                                          "valid_auprc": record["stages"]["stage1"]["valid_auprc"]}
    assert record["config"]["stage1"]["steps"] == 2 and 0 <= record["fp16_max_abs_diff"] <= 1e-3
    assert (kept / "eval" / "metrics.json").read_bytes() == (fd / "eval" / "metrics.json").read_bytes()
    assert not (kept / "stage2_no_mean" / "weights.pt").exists()
    with pytest.raises(ChromDragoNNError, match="already exists"):
        export_fold(cfg, cfg.run_dir, 0, runs)
    with pytest.raises(ChromDragoNNError, match="fold 3 is not finished"):
        export_fold(cfg, cfg.run_dir, 3, runs)
    a = write_report(cfg, cfg.run_dir, tmp_path / "a.md", tmp_path / "fa", ["x"])
    b = write_report(replace(cfg, run_dir=str(runs)), runs, tmp_path / "b.md", tmp_path / "fb", ["x"])
    assert a.replace("](fa/", "](f/") == b.replace("](fb/", "](f/").replace(str(runs), cfg.run_dir)
    # the sections written by hand below the marker survive rewriting the report, once
    from chromdragonn.training.report import HAND_WRITTEN_MARKER

    (tmp_path / "b.md").write_text(b + "\n" + HAND_WRITTEN_MARKER + "\n\n## By hand\n\nkept\n")
    for _ in range(2):
        write_report(replace(cfg, run_dir=str(runs)), runs, tmp_path / "b.md", tmp_path / "fb", ["x"])
    again = (tmp_path / "b.md").read_text()
    assert again.startswith(b) and again.endswith(HAND_WRITTEN_MARKER + "\n\n## By hand\n\nkept\n")
    assert again.count("## By hand") == 1
    res = export_run(cfg, cfg.run_dir, tmp_path / "weights", folds=[0], write_root_yaml=False, fp16_from=runs)
    assert (tmp_path / "weights" / "fold0.with_mean.pt").read_bytes() == (kept / "fold0.with_mean.pt").read_bytes()
    assert res["fp16_max_abs_diff"] == {"fold0.with_mean.pt": record["fp16_max_abs_diff"]}
    # all or nothing: a refused fp16 file (here the no-mean one, the tolerance set to 0) leaves the folder as it was
    import chromdragonn.training.export as export_module

    before = {p.name: p.read_bytes() for p in (tmp_path / "weights").iterdir()}
    monkeypatch.setattr(export_module, "FP16_TOLERANCE", 0.0)
    with pytest.raises(ChromDragoNNError, match="fold0.no_mean.pt: fp16 predictions differ from fp32"):
        export_run(cfg, cfg.run_dir, tmp_path / "weights", folds=[0], ship_no_mean=(0,), write_root_yaml=False,
                   fp16_from=runs)
    assert {p.name: p.read_bytes() for p in (tmp_path / "weights").iterdir()} == before


def test_head_warm_up_then_selection_from_step_0(cfg, stage1, tmp_path):
    """Warm-up on cached frozen-trunk features: the trunk stays the stage-1 trunk, the head moves,
    the mean column starts wide, and step 0 (the warmed-up model) is validated for selection."""
    s2 = replace(cfg.stage2, steps=0, mean_init_scale=3.0,
                 head_warmup=HeadWarmup(steps=3, intervals=4, contexts_per_interval=2, train_bins=40))
    out = train_stage2(replace(cfg, stage2=s2), 0, tmp_path / "warm", True, stage1, progress=False)
    state = _state(out)
    s1 = torch.load(stage1, weights_only=True)["state_dict"]
    assert all(torch.equal(state[k], s1[k]) for k in s1 if k.startswith("trunk.") and "num_batches" not in k)
    w_mean = state["head.fc1.weight"][:, -1]
    assert w_mean.abs().max() > 2.5  # U(-3, 3) over 1,000 weights; the default init is +-0.013
    summary = dict(line.split("\t") for line in (tmp_path / "warm" / "summary.tsv").read_text().splitlines())
    assert summary["warmup_steps"] == "3" and summary["warmup_bins"] == "40" and summary["best_step"] == "0"
    hist = (tmp_path / "warm" / "history.tsv").read_text().splitlines()
    assert hist[1].split("\t")[0] == "0" and 0 <= float(hist[1].split("\t")[2]) <= 1


def test_head_warm_up_keeps_its_best_validation_state(cfg, stage1, tmp_path):
    """select_every: the warm-up scores the head every N steps on stage 2's validation bins x
    contexts and keeps the best state: the saved head scores exactly the best of those scores."""
    from chromdragonn.training.train import _warmup_selector

    s2 = replace(cfg.stage2, steps=0, head_warmup=HeadWarmup(steps=6, intervals=4, contexts_per_interval=2,
                                                             train_bins=40, select_every=2))
    run_cfg = replace(cfg, stage2=s2)
    out = train_stage2(run_cfg, 0, tmp_path / "warm", False, stage1, progress=False)
    summary = dict(line.split("\t") for line in (tmp_path / "warm" / "summary.tsv").read_text().splitlines())
    scores = [float(x) for x in summary["warmup_selection_scores"].split(",")]
    assert len(scores) == 3  # steps 2, 4, 6
    assert int(summary["warmup_selected_step"]) == 2 * (1 + int(np.argmax(scores)))
    model = load_model(out)[0]
    assert _warmup_selector(model, FoldData(run_cfg, 0), run_cfg, torch.device("cpu"))() == pytest.approx(
        max(scores), abs=1e-4)


def test_head_copied_from_stage1_predicts_the_average_stage1_logit(cfg, stage1):
    """fc1 (trunk columns), bn4/bn5, fc2 copied; fc3 = mean of the per-context units: the stage-2
    log-odds equal the mean of the stage-1 logits, whatever the expression."""
    from chromdragonn.nn.model import ChromDragoNN, ModelConfig, SequenceModel
    from chromdragonn.training.train import init_head_from_stage1

    ck = torch.load(stage1, weights_only=True)
    seq_model = SequenceModel(ck["n_tasks"])
    seq_model.load_state_dict(ck["state_dict"])
    store = FoldData(cfg, 0).store
    model = ChromDragoNN(ModelConfig(len(store.genes), False))
    model.trunk.load_state_dict({k[6:]: v for k, v in ck["state_dict"].items() if k.startswith("trunk.")})
    init_head_from_stage1(model, ck["state_dict"])
    seq_model.eval(), model.eval()
    x = torch.from_numpy(store.onehot(np.arange(6)))
    expr = torch.from_numpy(store.expression[[0, 5, 9, 20, 30, 40]])
    with torch.no_grad():
        expected = seq_model(x).mean(dim=1)
        logp = model(x, expr)
    assert torch.allclose(logp[:, 1] - logp[:, 0], expected, atol=1e-5)


def test_pair_sampler_without_sequence_draws_the_same_pairs(cfg):
    from chromdragonn.training.data import PairSampler

    data = FoldData(cfg, 0)
    kw = dict(store=data.store, bin_idx=data.train_bins, ctx_idx=data.train_ctx, mean=data.mean,
              intervals=5, contexts_per_interval=3, seed=4)
    a, b = PairSampler(**kw).next(), PairSampler(**kw, with_sequence=False).next()
    assert b.seq is None and a.seq.shape == (5, 1000, 4)
    assert np.array_equal(a.bins, b.bins) and np.array_equal(a.contexts, b.contexts)
    assert np.array_equal(a.labels, b.labels)


def test_run_until_stops_each_fold_after_the_named_step(cfg_path, tmp_path):
    """`run --until stage1` trains stage 1 only; `--until stage2` then adds both stage-2 models, no evaluation."""
    from chromdragonn.training.__main__ import main

    run_cfg = yaml.safe_load(cfg_path.read_text())
    run_cfg["run_dir"] = str(tmp_path / "run")
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(run_cfg))
    fold = tmp_path / "run" / "fold0"
    args = ["run", "--config", str(tmp_path / "cfg.yaml"), "--folds", "0"]
    assert main([*args, "--until", "stage1"]) == 0
    assert (fold / "stage1" / "stage1.pt").is_file()
    assert not (fold / "stage2_with_mean").exists() and not (fold / "eval").exists()
    assert main([*args, "--until", "stage2"]) == 0
    assert (fold / "stage2_with_mean" / "weights.pt").is_file() and (fold / "stage2_no_mean" / "weights.pt").is_file()
    assert not (fold / "eval").exists()
    assert "fold 0 total (this invocation)" in (tmp_path / "run" / "timings.json").read_text()


def test_standardised_fc1_is_the_plain_head_fed_z_scores_and_folds_back_exactly():
    """stage2.standardise_expression's re-parametrisation (training/standardise.py) on the real
    Roadmap expression: the z-space fc1 fed raw expression == the same weights fed z-scores; folded
    into a plain nn.Linear it computes the same; a gene constant over the training contexts is inert."""
    from torch import nn

    from chromdragonn.nn.model import ExpressionHead
    from chromdragonn.training.standardise import StandardisedFC1, fold_fc1, standardise_fc1

    src = ExpressionSource()
    e = np.asarray(src.matrix(src.contexts), np.float64)  # 56 x 1,575 arcsinh(TPM)
    train, test = e[:40].copy(), e[40:]
    train[:, 5] = 1.0  # a gene constant over the training contexts (none is, in the real table)
    torch.manual_seed(0)
    head = ExpressionHead(e.shape[1], True, trunk_dim=11).double().eval()
    plain = nn.Linear(head.fc1.in_features, head.fc1.out_features).double()
    plain.load_state_dict(head.fc1.state_dict())
    standardise_fc1(head, train)
    assert isinstance(head.fc1, StandardisedFC1)
    mu, sd = train.mean(0), train.std(0, ddof=1)
    feats, mean = torch.randn(len(test), 11, dtype=torch.float64), torch.rand(len(test), 1, dtype=torch.float64)
    z = np.where(sd > 0, (test - mu) / np.where(sd > 0, sd, 1), 0.0)
    raw_in = torch.cat([feats, torch.from_numpy(test), mean], 1)
    z_in = torch.cat([feats, torch.from_numpy(z), mean], 1)
    assert torch.allclose(head.fc1(raw_in), plain(z_in), atol=1e-10)
    before = head.fc1(raw_in)
    fold_fc1(head)
    assert type(head.fc1) is nn.Linear and set(head.fc1.state_dict()) == {"weight", "bias"}
    assert torch.allclose(head.fc1(raw_in), before, atol=1e-10)
    assert np.flatnonzero(sd == 0).tolist() == [5] and torch.all(head.fc1.weight[:, 11 + 5] == 0)


def test_stage2_on_standardised_expression_resumes_and_saves_raw_weights(cfg, stage1, tmp_path):
    """standardise_expression: the warm-up and stage 2 train fc1 in z-space; a resumed run equals a
    straight one; the saved weights are a plain model on raw expression that predicts what the
    z-space best state predicts (float32: within 1e-5 in P)."""
    from chromdragonn.nn.model import ChromDragoNN, ModelConfig
    from chromdragonn.training.standardise import fold_fc1, standardise_fc1

    warm = HeadWarmup(steps=2, intervals=4, contexts_per_interval=2, train_bins=40)
    four = replace(cfg, stage2=replace(cfg.stage2, steps=4, eval_every=2, standardise_expression=True, head_warmup=warm))
    two = replace(four, stage2=replace(four.stage2, steps=2))
    out = train_stage2(four, 0, tmp_path / "straight", False, stage1, progress=False)
    train_stage2(two, 0, tmp_path / "resumed", False, stage1, progress=False)
    train_stage2(four, 0, tmp_path / "resumed", False, stage1, progress=False)
    last = {k: torch.load(tmp_path / k / "last.pt", weights_only=True) for k in ("straight", "resumed")}
    assert "head.fc1.weight_z" in last["straight"]["model"]
    assert all(torch.equal(v, last["resumed"]["model"][k]) for k, v in last["straight"]["model"].items())
    saved, genes = load_model(out)
    assert "head.fc1.weight" in saved.state_dict()
    data = FoldData(cfg, 0)
    z_model = ChromDragoNN(ModelConfig(len(genes), False))
    standardise_fc1(z_model.head, data.store.expression[data.train_ctx])
    z_model.load_state_dict(last["straight"]["best_model"])
    z_model.eval()
    feats = torch.randn(8, saved.head.trunk_dim)
    expr = torch.from_numpy(data.store.expression[data.test_ctx])
    with torch.no_grad():
        p_z = z_model.head.forward_grid(feats, expr).exp()
        fold_fc1(z_model.head)
        p_raw = saved.head.forward_grid(feats, expr).exp()
    assert torch.allclose(p_raw, p_z, atol=1e-5)


def test_compiled_training_step_matches_eager_and_checkpoints_plain_keys(cfg, tmp_path):
    """compile: true (torch.compile of the training step's forward): the first step's loss is the
    eager one (same batch, same weights; float32 kernels may sum in another order: 1e-5 relative),
    and the checkpoint holds the eager module's keys, so it resumes and exports like an eager run."""
    one = replace(cfg, stage1=replace(cfg.stage1, steps=1, eval_every=1))
    train_stage1(one, 0, tmp_path / "eager", progress=False)
    train_stage1(replace(one, compile=True), 0, tmp_path / "compiled", progress=False)
    loss = {k: float((tmp_path / k / "history.tsv").read_text().splitlines()[1].split("\t")[1])
            for k in ("eager", "compiled")}
    assert loss["compiled"] == pytest.approx(loss["eager"], rel=1e-5)
    state = torch.load(tmp_path / "compiled" / "last.pt", weights_only=True)["model"]
    assert "trunk.conv1.weight" in state and not any(k.startswith("_orig_mod") for k in state)
