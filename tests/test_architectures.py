"""Issue 30's acceptance test: every architecture people load × every view, through the Api (tests/architectures.py).

One parametrised case per (architecture, feature). Each architecture's tiny model is built, saved, loaded through
the Api and run over every view once (on its first case); its cases then read their cells. A cell passes when it
is ✓: the view ran and, where checked, equals a plain transformers forward (perplexity to 1e-5 relative,
attention rows to 1e-5, Quest with every page = Full Cache). Cells listed in architectures.KNOWN_FAILURES fail
today and are xfail(strict=True): a fix that makes one pass fails the suite until its entry is deleted.
`tools/architecture_matrix.py --known` prints the whole table and a fresh KNOWN_FAILURES.
"""
import pytest

import architectures as A

pytestmark = pytest.mark.slow  # 48.5 s for the 385 cases on 1 thread here (61 s wall with start-up): near the 60 s line


def _cases():
    for arch in A.ARCHITECTURES:
        for feature in A.FEATURES:
            known = A.KNOWN_FAILURES.get((arch, feature))
            marks = [pytest.mark.xfail(strict=True, reason=known)] if known else []
            yield pytest.param(arch, feature, marks=marks, id=f"{arch}-{feature}")


def test_known_failures_name_real_cells():
    stale = [k for k in A.KNOWN_FAILURES if k[0] not in A.ARCHITECTURES or k[1] not in A.FEATURES]
    assert not stale, f"KNOWN_FAILURES names cells the matrix does not have: {stale}"


@pytest.fixture(scope="module")
def matrix(tmp_path_factory):
    """arch → {feature: cell}, each architecture run once, when its first case asks for it."""
    from backend.api import Api

    api, done = Api(), {}

    def cells(arch: str) -> dict:
        if arch not in done:
            done[arch] = A.run(api, arch, A.save(arch, tmp_path_factory.mktemp(arch)))
        return done[arch]

    yield cells
    api._state.jobs.cancel_all()


@pytest.mark.parametrize("arch, feature", list(_cases()))
def test_architecture_feature(matrix, arch, feature):
    cell = matrix(arch)[feature]
    assert cell.startswith(("✓", "n/a: ")), f"{arch} × {feature}: {cell}"
