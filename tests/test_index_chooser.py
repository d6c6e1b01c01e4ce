"""The measured index choice (small data, no timing assertions) and the FAISS installation."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import faiss
import numpy as np
import pytest
import tomllib

import mmrec
from mmrec.index import faiss_ops, recall_at_k
from mmrec.index.chooser import fastscan_spec, ivf_flat_spec, ivf_list_options, rabitq_spec
from mmrec.index.trials import SIMPLER_MARGIN, Trial, pick_stable
from mmrec.index.tuning import _lowest_reaching, knob_values, tune

ROOT = Path(__file__).resolve().parents[1]


def clustered(n: int, d: int = 32, seed: int = 0, centres: int = 40) -> np.ndarray:
    """Unit vectors around fixed centres; ``seed`` draws new points around the same centres."""
    middle = np.random.default_rng(0).normal(size=(centres, d))
    rng = np.random.default_rng(seed + 1)
    x = middle[rng.integers(centres, size=n)] + 0.5 * rng.normal(size=(n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def chosen() -> tuple[np.ndarray, mmrec.ItemIndex]:
    x = clustered(12_000)
    return x, mmrec.build_index(x, target_recall=0.9, k=10)


def test_the_choice_is_measured_and_recorded(chosen):
    _, index = chosen
    trials = index.params["candidates"]
    families = {t["family"] for t in trials}
    assert {"flat", "ivf_flat", "ivf_fastscan_refine", "hnsw"} <= families
    measured = [t for t in trials if not t["status"].startswith(("skipped", "pruned"))]
    assert all(t["qps"] > 0 and t["index_bytes"] > 0 and 0 <= t["recall"] <= 1 for t in measured)
    # a pruned candidate fell short of the target while already searching slower than the best
    assert all(not t["reached"] and t["qps"] == 0 for t in trials if t["status"].startswith("pruned"))
    winner = next(t for t in trials if t["spec"] == index.spec)
    # the winner reached the target; nothing timed against it in the final rounds was more than
    # SIMPLER_MARGIN faster (a simpler index within the margin wins)
    finalists = [t for t in measured if t["rounds_qps"]]
    assert winner["reached"] and winner["status"].startswith("chosen")
    assert all(t["qps"] <= SIMPLER_MARGIN * winner["qps"] for t in finalists)
    assert all(len(t["rounds_qps"]) == 5 and t["qps"] == float(np.median(t["rounds_qps"])) for t in finalists)
    losers = [t for t in trials if t is not winner]
    expected = ("slower than", "within", "recall", "skipped", "pruned")
    assert all(t["status"].startswith(expected) for t in losers)
    hnsw = next(t for t in trials if t["family"] == "hnsw")
    assert hnsw["status"].startswith("skipped: below 50,000 items")  # the small-catalog fast path
    assert index.params["tuning"]["queries"] == 300 and index.params["index_bytes"] == winner["index_bytes"]
    ivf = [t for t in trials if t["family"] == "ivf_flat" and t["reached"]]
    assert all(t["distances_per_query"] > 0 for t in ivf)  # the list climb counts, it does not time
    assert index.spec in index.params["choice"] and "measured" in index.params["choice"]
    # candidates are timed on one thread (stable under load); the winner also on the process's threads
    assert "on one thread" in index.params["choice"] and index.params["qps"] > 0
    assert f"{faiss.omp_get_max_threads()} threads" in index.params["choice"]
    assert index.params["tuning"]["params"] == winner["params"]
    assert index.params["build_seconds"] > 0
    flat = next(t for t in trials if t["spec"] == "Flat")
    assert flat["recall"] == 1.0 and flat["reached"] and flat["qps"] > 0  # exact: only timed
    fast = next(t for t in trials if t["family"] == "ivf_fastscan_refine")
    lists = next(t for t in trials if t["spec"] == fast["spec"].split(",")[0] + ",Flat")
    if fast["params"]:  # same lists, compressed codes: never fewer probes than the exact lists needed
        assert fast["params"]["nprobe"] >= lists["params"]["nprobe"]


def test_the_chosen_index_holds_its_recall_on_new_queries(chosen):
    x, index = chosen
    queries = clustered(400, seed=7)
    exact = mmrec.build_index(x, spec="Flat")
    _, truth = exact.search(queries, 10)
    _, found = index.search(queries, 10)
    assert recall_at_k(found, truth) >= 0.9 - 0.03


def test_the_stable_pick_prefers_the_simpler_index_within_the_margin():
    def trial(spec: str, family: str, qps: float) -> Trial:
        return Trial(spec, family, qps=qps, reached=True)

    flat, ivf = trial("Flat", "flat", 1000.0), trial("IVF128,Flat", "ivf_flat", 5000.0)
    more_lists, fast = trial("IVF256,Flat", "ivf_flat", 5400.0), trial("IVF128,PQ16x4fsr,RFlat",
                                                                       "ivf_fastscan_refine", 5300.0)
    assert pick_stable([flat, ivf, more_lists, fast]) is ivf  # 8 % faster is noise: fewer lists win
    faster = trial("IVF128,PQ16x4fsr,RFlat", "ivf_fastscan_refine", 5000.0 * SIMPLER_MARGIN * 1.01)
    assert pick_stable([flat, ivf, faster]) is faster
    assert pick_stable([trial("HNSW32", "hnsw", 5100.0), ivf]) is ivf
    # order of entry does not matter
    assert pick_stable([fast, more_lists, ivf, flat]) is ivf
    # between list counts within the margin, the counted row scans decide with the timing (20k
    # clustered: IVF128 at nprobe 1 counts 128 + 156 distances, IVF256 256 + 78)
    ivf.distances_per_query, more_lists.distances_per_query = 284.0, 334.0
    assert more_lists.scan_cost < ivf.scan_cost  # 104 against 169 row scans
    assert pick_stable([flat, ivf, more_lists, fast]) is more_lists  # faster and cheaper by count
    slower = Trial("IVF256,Flat", "ivf_flat", qps=4_900.0, reached=True, distances_per_query=334.0)
    assert pick_stable([ivf, slower]) is ivf  # cheaper by count but slower: the fewer lists
    dearer = Trial("IVF512,Flat", "ivf_flat", qps=5_400.0, reached=True, distances_per_query=900.0)
    assert pick_stable([ivf, dearer]) is ivf  # faster but dearer by count: the fewer lists


def test_more_lists_are_skipped_when_even_their_fewest_distances_could_not_win():
    from mmrec.index.trials import needless_lists

    n = 1_000_000  # IVF1024 at nprobe 5: 1,024 centroids + ~5 x 875 rows a query
    ivf = Trial("IVF1024,Flat", "ivf_flat", qps=9_600.0, reached=True, params={"nprobe": 5},
                distances_per_query=5_500.0)
    assert ivf.scan_cost == pytest.approx(5_500 - 0.9 * 1_024)  # centroids at a tenth of a row each
    # IVF2048's floor: 205 + 5 x 488 = 2,646 row scans, 1.7x fewer: worth a build while IVF leads ...
    assert needless_lists(2048, n, ivf, leader=ivf) is None
    # ... but at most ~16,600 QPS: not even a finalist (1.5x) beside a ScaNN at 34,000
    scann = Trial("ScaNN2048,AH2,R100", "scann", qps=34_000.0, reached=True)
    why = needless_lists(2048, n, ivf, leader=scann)
    assert why is not None and "at most ~16,610 QPS" in why and "ScaNN2048,AH2,R100" in why
    # a leader that more lists could come near does not stop the climb (a wide margin: timings)
    assert needless_lists(2048, n, ivf, leader=Trial("S", "scann", qps=24_000.0, reached=True)) is None
    assert needless_lists(2048, n, ivf, leader=Trial("S", "scann", qps=26_000.0, reached=True)) is not None
    # 100k items, IVF256 at nprobe 1 (256 + 390 rows): IVF4096's floor (410 + 24) is not 1.05x under
    # its 416 row scans: skipped whoever leads
    few = Trial("IVF256,Flat", "ivf_flat", qps=150_000.0, reached=True, params={"nprobe": 1},
                distances_per_query=646.0)
    assert "not 1.05x fewer" in needless_lists(4096, 100_000, few, leader=few)
    # without a distance count (a GPU) only the leader's family can stop it: never by QPS
    on_gpu = Trial("IVF1024,Flat", "ivf_flat", qps=9_600.0, reached=True, params={"nprobe": 5})
    assert needless_lists(2048, n, on_gpu, leader=scann) is None


def test_scann_is_built_only_where_the_fewest_lists_scan_many_rows():
    from mmrec.index.trials import SCANN_MIN_ROWS, few_rows_scanned

    def ivf(nlist: int, distances: float | None) -> Trial:
        return Trial(f"IVF{nlist},Flat", "ivf_flat", qps=1.0, reached=True, distances_per_query=distances)

    # 100k clustered: IVF256 at nprobe 1 scans ~390 rows (646 distances): ScaNN cannot pay back
    why = few_rows_scanned(ivf(256, 646.0))
    assert why is not None and "~390 rows" in why and f"under {SCANN_MIN_ROWS:,}" in why
    assert few_rows_scanned(ivf(512, 1_292.0)) is None  # 200k: 780 rows, ScaNN 1.4x faster
    assert few_rows_scanned(ivf(512, None)) is None  # no count (a GPU): built as before


def test_scann_enters_the_contest_when_installed(monkeypatch):
    pytest.importorskip("scann")
    import mmrec.index.chooser as chooser
    import mmrec.index.trials as trials

    monkeypatch.setattr(chooser, "SMALL_CATALOG_ITEMS", 1_000)  # past the fast path at a test's size
    monkeypatch.setattr(trials, "SCANN_MIN_ROWS", 0)  # and past the rows its build needs to pay back
    index = mmrec.build_index(clustered(8_000), target_recall=0.9, build_budget=60)
    scann = next(t for t in index.params["candidates"] if t["family"] == "scann")
    assert scann["spec"] == "ScaNN128,AH2,R100" and not scann["status"].startswith("skipped")
    assert "leaves_to_search" in scann["params"]  # tuned like nprobe (pruned when slower than the best)
    assert scann["status"].startswith("pruned") or scann["index_bytes"] > 0


def test_a_memory_budget_skips_candidates_that_do_not_fit(monkeypatch):
    import mmrec.index.chooser as chooser

    monkeypatch.setattr(chooser, "SMALL_FASTSCAN_MIN_DIM", 0)  # fast-scan enters at 32 dims
    x = clustered(8_000)
    budget = x.nbytes + 8_000 * 12  # IVF-Flat fits; fast-scan codes beside the refine copy do not
    index = mmrec.build_index(x, target_recall=0.9, memory_budget=budget)
    over = [t for t in index.params["candidates"] if "memory budget" in t["status"]]
    assert {t["family"] for t in over} == {"ivf_fastscan_refine"}
    assert index.params["index_bytes"] > 0


def test_a_zero_build_budget_keeps_exact_search():
    index = mmrec.build_index(clustered(6_000), target_recall=0.95, build_budget=0)
    assert index.spec == "Flat"
    skipped = [t for t in index.params["candidates"] if t["spec"] != "Flat"]
    assert skipped and all(t["status"].startswith("skipped") for t in skipped)
    assert any("build budget" in t["status"] for t in skipped)


def test_small_catalogs_and_explicit_specs_are_not_measured():
    small = mmrec.build_index(clustered(2_000), target_recall=0.95)
    assert small.spec == "Flat" and "candidates" not in small.params
    given = mmrec.build_index(clustered(6_000), spec="IVF64,Flat", target_recall=0.9)
    assert "candidates" not in given.params and given.params["tuning"]["achieved_recall"] >= 0.9


def _check_removal_and_filters(index: mmrec.ItemIndex, x: np.ndarray) -> None:
    """After items 0..2999 are in: removed items never come back, others are found, filters hold."""
    index.remove(["2600", "3"])
    _, found = index.search(x[2_700:2_701], 1)
    assert index.ids[found[0, 0]] == "2700"
    _, found = index.search(x[2_600:2_601], 3000)
    assert not {"2600", "3"} & set(index.ids[found[0][found[0] >= 0]].tolist())
    allowed = np.zeros(index.n_labels, bool)
    allowed[:100] = True
    _, found = index.search(x[:5], 10, allowed=allowed)
    assert (found[found >= 0] < 100).all()


def test_fastscan_refine_index_searches_updates_and_saves(tmp_path):
    x = clustered(3_000)
    spec = fastscan_spec(32, x.shape[1])
    assert spec == "IVF32,PQ16x4fsr,RFlat"
    index = mmrec.build_index(x[:2_500], spec=spec, target_recall=0.9)
    assert faiss_ops.refine_of(index.faiss_index) is not None
    assert "k_factor_rf" in index.params["tuning"]["params"]
    ids = [str(i) for i in range(2_500, 3_000)]
    index.add(ids, x[2_500:])
    _check_removal_and_filters(index, x)
    index.retrain()  # labels stay in step with the rows the refine stage numbers itself
    loaded = mmrec.ItemIndex.load(index.save(tmp_path / "idx"))
    assert loaded.params["k_factor_rf"] == index.params["k_factor_rf"]
    np.testing.assert_array_equal(loaded.search(x[:20], 5)[1], index.search(x[:20], 5)[1])


@pytest.mark.parametrize("spec", [rabitq_spec(32), "IVF32_HNSW32,Flat", "ScaNN32,AH2,R50"])
def test_rabitq_graph_quantised_and_scann_indices_search_update_and_save(tmp_path, spec):
    if spec.startswith("ScaNN"):
        pytest.importorskip("scann")
    x = clustered(3_000, d=64)
    index = mmrec.build_index(x[:2_500], spec=spec, target_recall=0.9)
    assert index.params["tuning"]["achieved_recall"] >= 0.9
    index.add([str(i) for i in range(2_500, 2_600)], x[2_500:2_600])
    _, found = index.search(x[2_550:2_551], 1)  # an added item is found (ScaNN: its exact side table)
    assert index.ids[found[0, 0]] == "2550"
    retrains = index.params.get("retrains", 0)
    index.add([str(i) for i in range(2_600, 3_000)], x[2_600:])
    if spec.startswith("ScaNN"):  # past 10 % of the tree's rows the side table is folded into a new tree
        assert index.params["retrains"] == retrains + 1 and len(index.faiss_index.extra_labels) == 0
    _check_removal_and_filters(index, x)
    loaded = mmrec.ItemIndex.load(index.save(tmp_path / "idx"))
    np.testing.assert_array_equal(loaded.search(x[:20], 5)[1], index.search(x[:20], 5)[1])
    threads = faiss.omp_get_max_threads()
    with faiss_ops.threads(1):  # one thread (ScaNN: on the calling thread): the same results
        assert faiss.omp_get_max_threads() == 1
        np.testing.assert_array_equal(index.search(x[:20], 5)[1], loaded.search(x[:20], 5)[1])
    assert faiss.omp_get_max_threads() == threads


def test_knob_grids_and_the_search_for_the_cheapest_value():
    assert ivf_list_options(1_000_000) == [1024, 2048, 4096]
    assert ivf_list_options(20_000) == [128, 256]  # small catalogs: two list counts
    assert ivf_flat_spec(4096, 3_000_000) == "IVF4096_HNSW32,Flat"
    assert ivf_flat_spec(4096, 1_000_000) == ivf_flat_spec(4096, 1_000_000).replace("_HNSW32", "")
    assert ivf_list_options(3_000) == [64]  # 128 lists would get too few training points
    assert fastscan_spec(1024, 384) == "IVF1024,PQ96x4fsr,RFlat"
    assert fastscan_spec(64, 65) is None  # no even code count divides an odd width: not a candidate
    assert fastscan_spec(64, 52) == "IVF64,PQ26x4fsr,RFlat"
    # 130 = 2 x 5 x 13: no even count gives codes of <= 4 dims but 130 (26 codes of 5 dims: recall 0.13)
    assert fastscan_spec(1024, 130) == "IVF1024,PQ130x4fsr,RFlat"
    values = list(range(1, 200))
    measured = []

    def recall(v: int) -> float:
        measured.append(v)
        return min(1.0, v / 100)

    assert _lowest_reaching(values, recall, 0.37) == 37
    assert max(measured) < 64  # galloping from the cheap end never measured the dearest settings
    assert _lowest_reaching(values, lambda v: 0.5, 0.9) is None
    assert _lowest_reaching([4], lambda v: 1.0, 0.9) == 4
    index = mmrec.build_index(clustered(3_000), spec="IVF64,Flat")
    name, grid = knob_values(index.faiss_index)
    assert name == "nprobe" and grid[:16] == list(range(1, 17)) and grid[-1] <= 64
    result = tune(index, target_recall=0.5, k=10, n_queries=200, least=12)
    assert min(point["nprobe"] for point in result["curve"]) == 12 and result["params"]["nprobe"] == 12


# ----------------------------------------------------------------------------- installation
def _extra_closure(extras: dict[str, list[str]], name: str, seen: set[str] | None = None) -> list[str]:
    """Requirements of an extra with its ``mmrec[...]`` references expanded."""
    seen = seen if seen is not None else set()
    seen.add(name)
    out = []
    for requirement in extras[name]:
        if requirement.startswith("mmrec["):
            for inner in requirement[6 : requirement.index("]")].split(","):
                if inner not in seen:
                    out += _extra_closure(extras, inner, seen)
        else:
            out.append(requirement)
    return out


def _faiss_names(requirements: list[str]) -> set[str]:
    names = {r.split(";")[0].split("[")[0].split(">")[0].split("=")[0].split("<")[0].strip().lower()
             for r in requirements}
    return names & set(faiss_ops.FAISS_DISTRIBUTIONS)


def test_every_install_route_brings_at_most_one_faiss_build():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]
    assert not _faiss_names(project["dependencies"]), "FAISS is a choice of extras, not a core dependency"
    extras = project["optional-dependencies"]
    assert _faiss_names(_extra_closure(extras, "cpu")) == {"faiss-cpu"}
    assert _faiss_names(_extra_closure(extras, "gpu")) == {"faiss-gpu-cu12"}
    for name in extras:
        assert len(_faiss_names(_extra_closure(extras, name))) <= 1, name
    # the README's install command (and CI's) picks one
    readme = (ROOT / "README.md").read_text("utf-8")
    assert 'pip install -e ".[cpu,dev]"' in readme
    assert 'pip install -e ".[cpu,dev]"' in (ROOT / ".ci" / "run").read_text("utf-8")


def test_this_environment_has_exactly_one_faiss_distribution_and_it_owns_the_package():
    found = faiss_ops.installed_faiss_distributions()
    assert len(found) == 1, f"FAISS distributions installed side by side: {found}"
    name = found[0].split("==")[0]
    module = faiss_ops.faiss()
    files = importlib.metadata.distribution(name).files or []
    owned = {str(Path(str(f))) for f in files}
    assert str(Path("faiss") / "__init__.py") in owned
    assert Path(module.__file__).resolve().parent.name == "faiss"


def test_two_faiss_builds_side_by_side_are_reported(monkeypatch, caplog):
    installed = {"faiss-cpu": "1.15.1", "faiss-gpu-cu12": "1.14.1", "numpy": "2"}

    def version(name: str) -> str:
        if name not in installed:
            raise importlib.metadata.PackageNotFoundError(name)
        return installed[name]

    monkeypatch.setattr(importlib.metadata, "version", version)
    assert faiss_ops.installed_faiss_distributions() == ["faiss-cpu==1.15.1", "faiss-gpu-cu12==1.14.1"]
    faiss_ops.faiss.cache_clear()
    try:
        with caplog.at_level("WARNING", logger="mmrec.index.faiss_ops"):
            faiss_ops.faiss()
        assert "2 FAISS distributions are installed" in caplog.text
        assert "pip uninstall -y faiss-cpu faiss-gpu-cu12" in caplog.text
    finally:
        faiss_ops.faiss.cache_clear()


def test_missing_faiss_names_the_extras(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_faiss(name, *args, **kwargs):
        if name == "faiss":
            raise ImportError("No module named 'faiss'")
        return real_import(name, *args, **kwargs)

    faiss_ops.faiss.cache_clear()
    monkeypatch.setattr(builtins, "__import__", no_faiss)
    try:
        with pytest.raises(mmrec.MissingDependencyError, match=r"mmrec\[cpu\].*mmrec\[gpu\]"):
            faiss_ops.faiss()
    finally:
        monkeypatch.undo()
        faiss_ops.faiss.cache_clear()


def test_a_small_narrow_catalog_builds_only_what_can_win():
    from mmrec.index.trials import IVF_GAIN

    index = mmrec.build_index(clustered(12_000), target_recall=0.9)
    trials = {t["spec"]: t for t in index.params["candidates"]}
    fastscan = next(t for t in trials.values() if t["family"] == "ivf_fastscan_refine")
    assert fastscan["status"].startswith("skipped: below 50,000 items and 128 dimensions")
    ivf = [t for t in trials.values() if t["family"] == "ivf_flat"]
    built = [t for t in ivf if not t["status"].startswith("skipped")]
    # every list count tuned to its end is counted (one pruned on a busy machine, slower before it
    # reached the target, is not)
    assert built and all(t["distances_per_query"] for t in built if not t["status"].startswith("pruned"))
    for t in ivf:  # a list count skipped before its build: its floor could not beat the best's count
        if "distances a query" in t["status"]:
            best = min(b["distances_per_query"] for b in built if b["reached"])
            lists = int(t["spec"][3:].split(",")[0])
            assert lists + 12_000 / lists >= best / IVF_GAIN

