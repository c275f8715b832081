"""The training recipe: early stopping, augmentation, row filters, motif-initialised detectors, the
site-and-context network, ensembles, baselines and the fitted start, each against a plain reference."""

from __future__ import annotations

import itertools

import numpy as np
import pyarrow as pa
import pytest

from scanner.data_loading import RowFilter, iter_batches, partition_files, shift_codes, site_hash
from scanner.errors import InputError
from scanner.genome import decode, encode, one_hot, reverse_complement_codes
from scanner.motifs import Background, Motif, log_odds
from scanner.toydata import write_toy_datasets
from scanner.train import Schedule, TrainConfig, ensemble_size


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _random_motif(rng: np.random.Generator, length: int, name: str = "M") -> Motif:
    probs = rng.dirichlet(np.full(4, 0.3), size=length)
    return Motif(f"ID{name}", name, probs, 20)


# ---- schedule --------------------------------------------------------------------------------------


def test_auroc_monitor_min_epochs_and_start_candidate():
    s = Schedule(TrainConfig(patience=1, min_epochs=4))
    assert s.step(0.70, 0.60)
    assert s.step(0.80, 0.70)  # higher auROC wins although the loss rose
    assert s.step(0.60, 0.70)  # equal auROC, lower loss: the tie goes to the loss
    assert not s.step(0.65, 0.70)
    s2 = Schedule(TrainConfig(patience=1, min_epochs=4))
    s2.step(0.7, 0.8)
    assert not s2.step(0.7, 0.7) and not s2.stop  # patience reached at epoch 2 but min_epochs is 4
    assert not s2.step(0.7, 0.7) and not s2.stop
    assert not s2.step(0.7, 0.7) and s2.stop
    # loss monitor: auROC ignored
    s3 = Schedule(TrainConfig(monitor="loss", patience=5))
    assert s3.step(0.5, 0.9) and not s3.step(0.6, 0.99) and s3.step(0.4, 0.1)
    # undefined auROC falls back to the loss
    s4 = Schedule(TrainConfig())
    assert s4.step(0.5, None) and s4.step(0.4, float("nan")) and not s4.step(0.45, None)
    # a fitted start is the first candidate: epoch 1 must beat it
    s5 = Schedule(TrainConfig())
    s5.start(0.5, 0.8)
    assert not s5.step(0.4, 0.79) and s5.step(0.6, 0.81) and s5.epoch == 2


def test_ties_go_to_the_lower_loss():
    s = Schedule(TrainConfig(patience=3))
    assert s.step(0.6, 0.8)
    assert s.step(0.5, 0.8)
    assert not s.step(0.55, 0.8)


def test_ensemble_size_by_rows_and_explicit():
    assert [ensemble_size(TrainConfig(), n) for n in (100, 1999, 2000, 19_999, 20_000)] == [5, 5, 3, 3, 1]
    assert ensemble_size(TrainConfig(ensemble=2), 10**6) == 2


def test_config_errors_name_the_flag():
    for kw, flag in (
        ({"monitor": "acc"}, "--monitor"),
        ({"train_rows": "some"}, "--train-rows"),
        ({"ensemble": -1}, "--ensemble"),
        ({"max_shift": -2}, "--max-shift"),
        ({"min_epochs": 0}, "--min-epochs"),
        ({"dropout": 1.0}, "--dropout"),
    ):
        with pytest.raises(InputError) as e:
            TrainConfig(**kw).validate()
        assert e.value.field == flag


# ---- augmentation and row filters --------------------------------------------------------------------


def test_shift_codes_matches_a_plain_loop():
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 5, size=(50, 40), dtype=np.uint8)
    shifts = rng.integers(-7, 8, size=50)
    out = shift_codes(codes, shifts)
    for i in range(50):
        for p in range(40):
            src = p - shifts[i]
            assert out[i, p] == (codes[i, src] if 0 <= src < 40 else 4)


def test_shift_augmentation_never_moves_the_site_out_of_the_window(tmp_path):
    """Every streamed training row holds the whole centred site, moved by at most max_shift."""
    width, shift = 200, 20
    root = write_toy_datasets(tmp_path / "d", sizes={"train": 300, "val": 20, "test": 20}, width=width, seed=2)
    files = partition_files(root, "pvalue", "TOY", "train")
    core = encode("CACGTG")
    c0 = width // 2 - 3
    seen = 0
    for b in iter_batches(files, 64, shuffle=True, seed=4, max_shift=shift, rc_augment=True):
        codes = np.argmax(b.x, axis=1).astype(np.uint8)
        codes[b.x.max(axis=1) < 1] = 4
        for row in codes:
            hits = [s for s in range(-shift, shift + 1) if np.array_equal(row[c0 + s : c0 + s + 6], core)]
            assert hits, decode(row)
            seen += 1
    assert seen == 300


def test_holdout_parts_are_disjoint_stable_and_cover(tmp_path):
    root = write_toy_datasets(tmp_path / "d", sizes={"train": 400, "val": 20, "test": 20}, seed=3)
    files = partition_files(root, "pvalue", "TOY", "train")
    counts = []
    for i in range(5):
        kept = [b.y.size for b in iter_batches(files, 1000, row_filter=RowFilter(holdout=(5, i), take_holdout=True))]
        rest = [b.y.size for b in iter_batches(files, 1000, row_filter=RowFilter(holdout=(5, i)))]
        assert sum(kept) + sum(rest) == 400
        counts.append(sum(kept))
    assert sum(counts) == 400 and min(counts) > 40  # a partition, roughly even
    t = pa.table({"chrom": ["chr1", "chr2"], "start": [5, 5], "end": [11, 11]})
    assert site_hash(t)[0] != site_hash(t)[1] and np.array_equal(site_hash(t), site_hash(t))


# ---- motif initialisation --------------------------------------------------------------------------


def test_motif_filters_hold_the_log_odds_exactly():
    from scanner.models.motif_init import motif_filters

    rng = np.random.default_rng(1)
    m = _random_motif(rng, 9)
    bg = Background(np.array([0.3, 0.2, 0.2, 0.3]), "test")
    lo = log_odds(m, bg)
    f_plus, f_minus = motif_filters([m], 15, background=bg, bias_fraction=0.5)
    np.testing.assert_array_equal(f_plus.weight[:, 3:12], lo.T)
    assert not f_plus.weight[:, :3].any() and not f_plus.weight[:, 12:].any()
    np.testing.assert_array_equal(f_minus.weight[:, 3:12], lo[::-1, ::-1].T)  # reverse complement
    assert f_plus.bias == pytest.approx(-0.5 * lo.max(1).sum())
    # a motif longer than the filter keeps its most informative columns
    long = Motif("L", "L", np.vstack([np.full((5, 4), 0.25), np.eye(4)[[0, 1, 2, 3, 0, 1]]]), 20)
    (fl, _) = motif_filters([long], 6)
    np.testing.assert_array_equal(fl.weight, log_odds(long, Background.uniform())[5:].T)


def test_init_detectors_writes_filters_and_the_own_site_filter():
    import torch

    from scanner.models import ModelSpec, build_model
    from scanner.models.motif_init import init_detectors, init_site_filter, motif_filters

    rng = np.random.default_rng(2)
    own, other = _random_motif(rng, 10, "OWN"), _random_motif(rng, 8, "OTHER")
    net = build_model(ModelSpec(arch="sitectx", seq_len=300, site_len=10, radii=(20, 60)))
    filters = motif_filters([own, other], 15)
    rows = init_detectors(net, filters)
    assert init_site_filter(net, own)
    assert rows.tolist() == [True] * 4 + [False] * 28
    for i, f in enumerate(filters):
        np.testing.assert_allclose(net.conv.weight[i].detach().numpy(), f.weight, rtol=0, atol=1e-6)
        assert float(net.conv.bias[i].detach()) == pytest.approx(f.bias, abs=1e-5)
    site = net.site_conv.weight[0].detach().numpy()
    np.testing.assert_allclose(site[:, 15:25], log_odds(own, Background.uniform()).T, atol=1e-6)
    assert not site[:, :15].any() and not site[:, 25:].any()
    # the network's first detector then scores a planted site as the log-odds sum
    seq = rng.integers(0, 4, 300).astype(np.uint8)
    planted = own.probs.argmax(1).astype(np.uint8)
    seq[100:110] = planted
    z = net.conv(torch.from_numpy(one_hot(seq[None])))[0, 0, 100 - 2].item()
    lo = log_odds(own, Background.uniform())
    assert z == pytest.approx(lo[np.arange(10), planted].sum() + filters[0].bias, abs=1e-4)


def test_select_motifs_keeps_the_one_that_separates_the_classes():
    from scanner.models.motif_init import select_motifs

    rng = np.random.default_rng(3)
    own, planted = _random_motif(rng, 10, "OWN"), _random_motif(rng, 10, "PLANTED")
    decoys = [_random_motif(rng, 10, f"D{i}") for i in range(6)]
    codes = rng.integers(0, 4, size=(200, 150), dtype=np.uint8)
    labels = np.repeat([1, 0], 100)
    codes[:100, 30:40] = planted.probs.argmax(1)
    chosen = select_motifs([*decoys, planted], codes, labels, 2, required=[own])
    assert [m.name for m in chosen] == ["OWN", "PLANTED"]


# ---- baselines -----------------------------------------------------------------------------------


def test_kmer_spectrum_equals_counting_strings():
    from scanner.train.baselines import kmer_spectrum

    rng = np.random.default_rng(4)
    codes = rng.integers(0, 5, size=(6, 30), dtype=np.uint8)
    codes[codes == 4] = rng.integers(0, 4, size=int((codes == 4).sum()))
    codes[0, 10] = 4  # an N breaks the k-mers holding it
    got = kmer_spectrum(codes, kmax=3)
    comp = str.maketrans("ACGT", "TGCA")
    for i, row in enumerate(codes):
        s = decode(row)
        col = 0
        for k in range(1, 4):
            classes = sorted(
                {min(km, km[::-1].translate(comp)) for km in map("".join, itertools.product("ACGT", repeat=k))}
            )
            for c in classes:
                rc = c[::-1].translate(comp)
                n = sum(1 for p in range(len(s) - k + 1) if s[p : p + k] in (c, rc))
                assert got[i, col] == pytest.approx(n / (len(s) - k + 1)), (i, c)
                col += 1
        assert col == got.shape[1]


def test_site_onehot_reads_the_motif_strand():
    from scanner.train.baselines import site_onehot

    w, site_len, flank = 41, 6, 3
    rng = np.random.default_rng(5)
    codes = rng.integers(0, 4, size=(2, w), dtype=np.uint8)
    got = site_onehot(codes, np.array(["+", "-"]), site_len, flank)
    a = w // 2 - site_len // 2 - flank
    plus = decode(codes[0])[a : a + site_len + 2 * flank]
    rc = decode(reverse_complement_codes(codes[1]))
    ar = w - w // 2 - (site_len - site_len // 2) - flank
    minus = rc[ar : ar + site_len + 2 * flank]
    for row, s in ((got[0], plus), (got[1], minus)):
        np.testing.assert_array_equal(row.reshape(-1, 4), one_hot(encode(s)).T)
    # the - strand crop is the + strand crop of the same bases, reverse complemented
    assert minus == decode(reverse_complement_codes(encode(decode(codes[1])[w // 2 - 3 - 3 : w // 2 - 3 - 3 + 12])))


# ---- the site-and-context network ------------------------------------------------------------------


def _sitectx(members: int = 1, **kw):
    import torch

    from scanner.models import ModelSpec, build_model

    torch.manual_seed(0)
    spec = dict(arch="sitectx", seq_len=240, site_len=10, radii=(20, 60, 100), members=members)
    spec.update(kw)
    model = build_model(ModelSpec(**spec))
    for m in model.modules():  # statistics a trained network would have, so the test is not trivial
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
        if type(m).__name__ == "Standardize":
            m.mean.uniform_(0.0, 0.1)
            m.scale.uniform_(1.0, 10.0)
    return model.eval()


def _onehot_batch(n: int, length: int, seed: int = 0):
    import torch

    rng = np.random.default_rng(seed)
    x = torch.from_numpy(one_hot(rng.integers(0, 4, size=(n, length), dtype=np.uint8)))
    x[0, :, 3] = 0.25  # an N column
    x[-1, :, length // 2] = 0.25
    return x


@pytest.mark.parametrize("kw", [{}, {"site_shift": 4, "kmer_max": 2}, {"members": 2}, {"kmer_max": 0}])
def test_fast_ism_equals_naive_ism_on_the_site_context_network(kw):
    from scanner.interpret.ism import ism

    model = _sitectx(**kw)
    x = _onehot_batch(3, 240)
    fast = ism(model, x, fast=True)
    naive = ism(model, x, fast=False)
    assert naive.abs().max() > 1e-3
    np.testing.assert_allclose(fast.numpy(), naive.numpy(), atol=2e-5 * float(naive.abs().max()) + 1e-6)
    part = ism(model, x, start=100, end=140, fast=True)
    np.testing.assert_allclose(part.numpy(), naive[:, :, 100:140].numpy(), atol=2e-5 * float(naive.abs().max()) + 1e-6)


def test_deeplift_is_complete_and_gradcam_runs_on_the_site_context_network():
    from scanner.interpret.methods import attribute

    model = _sitectx(members=2)
    x = _onehot_batch(2, 240, seed=1)
    res = attribute(model, x, "deeplift")
    assert float(res.delta.abs().max()) < 1e-4
    cam = attribute(model, x, "gradcam")
    assert cam.score.shape == (2, 240) and bool((cam.score >= 0).all())
    guided = attribute(model, x, "guided-gradcam")
    assert guided.values.shape == (2, 4, 240)


def test_kmer_branch_counts_canonical_kmers_and_the_ensemble_averages():
    import torch

    from scanner.train.baselines import kmer_spectrum

    model = _sitectx(members=3)
    x = _onehot_batch(4, 240, seed=2)
    net = model.members[0]
    comp = net.composition(net.kmer_indicators(x)).numpy()
    codes = np.argmax(x.numpy(), axis=1).astype(np.uint8)
    codes[x.numpy().max(axis=1) < 1] = 4
    # the network counts the k-mers starting at 0 .. W - kmax (its convolution's positions): those of
    # the first W - kmax + k bases, whose spectrum kmer_spectrum gives for each k
    blocks = []
    for k, size in ((1, 2), (2, 10), (3, 32)):
        blocks.append(kmer_spectrum(codes[:, : 240 - 3 + k], kmax=k)[:, -size:])
    np.testing.assert_allclose(comp, np.concatenate(blocks, 1), rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        mean = torch.stack([m(x) for m in model.members]).mean(0)
        torch.testing.assert_close(model(x), mean)
        assert model.member_logits(x).shape == (3, 4)


def test_kmer_counting_equals_the_kmer_convolution():
    """The no-gradient fast path (integer k-mer codes) gives the convolution branch's numbers, N included."""
    import torch

    net = _sitectx(members=1)
    x = _onehot_batch(5, 240, seed=7)
    x[1, :, 50:60] = 0.25  # an N run
    x[2, :, 0] = 0.25  # an N at the first column
    x[3, :, 237:] = 0.25  # Ns at the end
    with torch.no_grad():
        slow = net.composition(net.kmer_indicators(x))
        fast = net.kmer_frequencies(x)
        fast_nc = net.kmer_frequencies(x.flip(2).flip(2).transpose(1, 2).contiguous().transpose(1, 2))
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(fast_nc, slow, rtol=1e-5, atol=1e-6)
    assert not torch.equal(fast[1], fast[0])


def test_fit_wide_starts_the_network_as_the_regression():
    """After the fitted start the network's logit is the logistic regression's decision function."""
    import torch
    from sklearn.linear_model import LogisticRegression

    from scanner.train.baselines import Rows, site_onehot
    from scanner.train.prefit import composition_features, fit_wide

    rng = np.random.default_rng(6)
    n, w = 300, 240
    codes = rng.integers(0, 4, size=(n, w), dtype=np.uint8)
    y = (rng.random(n) < 0.5).astype(np.int8)
    gc = rng.random(n) < np.where(y == 1, 0.8, 0.2)  # composition decides: GC-rich windows are bound
    codes[gc, ::3] = 2
    rows = Rows(codes, y, np.zeros(n), np.array(["+"] * n), np.full(n, 10))
    x = torch.from_numpy(one_hot(codes))

    def standardised(a: np.ndarray) -> np.ndarray:
        std = a.std(0)
        return (a - a.mean(0)) * np.divide(1.0, std, out=np.zeros_like(std), where=std > 1e-12)

    # composition alone (alpha = 0): exactly the regression on the network's standardised composition
    net = _sitectx().train()
    fit = fit_wide(net, rows, None, seed=0, alphas=(0.0,))
    assert fit.selected_by == "cv" and fit.alpha == 0 and fit.auroc > 0.7
    net.eval()
    with torch.no_grad():
        z = net(x).reshape(-1).numpy()
    kmer = standardised(composition_features(net, codes))
    ref = LogisticRegression(C=fit.c, max_iter=2000).fit(kmer, y).decision_function(kmer)
    np.testing.assert_allclose(z, ref, atol=1e-4)
    assert float(net.fc2.weight.detach().abs().max()) == 0.0
    assert not float(net.site_conv.weight[0].detach().abs().max())

    # with the site block: the first site filter holds the regression's site weights (raw units)
    net = _sitectx().train()
    fit = fit_wide(net, rows, None, seed=0, alphas=(1.0,))
    site = site_onehot(codes, rows.strand, 10, 15).astype(np.float64)
    design = np.concatenate([kmer, standardised(site)], 1)
    lr = LogisticRegression(C=fit.c, max_iter=2000).fit(design, y)
    std = site.std(0)
    raw = lr.coef_[0, kmer.shape[1] :] * np.divide(1.0, std, out=np.zeros_like(std), where=std > 1e-12)
    np.testing.assert_allclose(net.site_conv.weight[0].detach().numpy(), raw.reshape(-1, 4).T, atol=1e-5)


def test_fit_wide_leaves_a_one_class_network_alone():
    from scanner.train.baselines import Rows
    from scanner.train.prefit import fit_wide

    net = _sitectx()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    codes = np.zeros((10, 240), dtype=np.uint8)
    assert (
        fit_wide(net, Rows(codes, np.ones(10, np.int8), np.zeros(10), np.array(["+"] * 10), np.full(10, 10)), None)
        is None
    )
    assert all((net.state_dict()[k] == v).all() for k, v in before.items())


# ---- search ----------------------------------------------------------------------------------------


@pytest.mark.ray
def test_tune_runs_trials_and_keeps_the_best_by_validation(ray_cluster, tmp_path):
    import json

    from scanner.train import checkpoint_dir
    from scanner.train.tune import SearchSpace, TuneSettings, tune_models

    data = write_toy_datasets(tmp_path / "datasets", sizes={"train": 200, "val": 60, "test": 60}, seed=7)
    space = SearchSpace(channels=(8, 16), filter_width=(7,), hidden=(8,), lr=(1e-3, 1e-2), dropout=(0.1,))
    base = TrainConfig(epochs=2, min_epochs=1, batch_size=32, ensemble=1, gpus_per_model=0.5, baselines=False)
    settings = TuneSettings(samples=3, grace_period=1, space=space)
    (result,) = tune_models(data, tmp_path / "models", base, settings, log=print)
    assert len(result.trials) == 3 and all(t["error"] is None for t in result.trials)
    assert result.best_score == max(t["best_score"] for t in result.trials)
    assert result.best in [t["config"] for t in result.trials]
    meta = json.loads((checkpoint_dir(tmp_path / "models", "TOY", "pvalue") / "model.json").read_text())
    assert meta["tuned"]["config"] == result.best
    assert meta["train_config"]["channels"] == result.best["channels"]
    assert meta["spec"]["conv_channels"] == [result.best["channels"]]
    assert (tmp_path / "metrics.parquet").is_file()
    # a second call resumes the finished experiment instead of starting over
    (again,) = tune_models(data, tmp_path / "models", base, settings)
    key = lambda t: json.dumps(t["config"], sort_keys=True)  # noqa: E731
    assert sorted(map(key, again.trials)) == sorted(map(key, result.trials))
