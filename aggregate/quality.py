"""Output agreement and the task check in a sweep's outputs (docs/quality.md).

Every cell that kept the greedy tokens of the check prompts (``record["quality"]``) is compared
with a reference cell of the same weights: by default the hf backend at float32 in the sweep,
or in the directory given with ``python -m aggregate --reference DIR``. Dummy weights
(``model.load_format=dummy``) are compared only with cells of the same backend (their random
weights are each loader's own; the seed is the loader's fixed one), and the report says so.

Agreement of a prompt = the share of its first K greedy tokens before the first token that
differs (K = the tokens both cells kept); a cell's agreement is the mean over its prompts. A
cell is flagged ``divergent`` below the threshold of its dtype (:data:`THRESHOLDS`). The
comparison is added to copies of the records for results.csv and the report; record.json
and results.jsonl keep what the cell measured.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

from aggregate.tables import MISSING, Table, markdown
from jobs.quality import CHECK_OK
from jobs.record import Flag

Record = dict[str, Any]

# The least agreement a dtype may show against the reference before it is called divergent.
# float32 against float32 must match every token; the half-precision dtypes round each
# logit to 11 (float16) or 8 (bfloat16) significant bits, which flips near-ties and then the
# rest of the continuation, so they keep only a floor that a broken kernel (which diverges at
# the first tokens of nearly every prompt) falls below. docs/quality.md gives the reasoning.
THRESHOLDS = {"float32": 1.0, "float16": 0.5, "bfloat16": 0.25}
DEFAULT_THRESHOLD = 0.25  # a dtype without its own threshold (e.g. int8 weights)
_PRECISION = ("float32", "float16", "bfloat16")  # reference preference, most precise first

REFERENCE = "reference"
NO_REFERENCE = "no reference"


def _model(rec: Record) -> dict[str, Any]:
    config = rec.get("config")
    model = config.get("model") if isinstance(config, dict) else None
    return model if isinstance(model, dict) else {}


def _dummy(rec: Record) -> bool:
    return rec.get("load_format") == "dummy" or _model(rec).get("load_format") == "dummy"


def weights_key(rec: Record) -> str:
    """What makes two cells' weights the same: the checkpoint directory's name (the tiny
    model's carries a digest of its shape and seed; a name, so a reference sweep from
    another machine or cache still matches), the layers kept, the load format; dummy
    weights also the backend family."""
    model = _model(rec)
    path = str(rec.get("model_path") or model.get("path") or "")
    key: dict[str, Any] = {
        "weights": os.path.basename(os.path.normpath(path)) if path else rec.get("model"),
        "load_format": rec.get("load_format") or model.get("load_format"),
        "layers": model.get("num_layers_override", 0),
    }
    if _dummy(rec):
        key["backend"] = rec.get("backend")
    return json.dumps(key, sort_keys=True, default=str)


def _check(rec: Record) -> dict[str, Any] | None:
    q = rec.get("quality")
    if rec.get("status") != "ok" or not isinstance(q, dict) or q.get("check_status") != CHECK_OK:
        return None
    return q if isinstance(q.get("check_tokens"), list) else None


def _preference(rec: Record) -> tuple:
    dtype = str(rec.get("dtype"))
    rank = _PRECISION.index(dtype) if dtype in _PRECISION else len(_PRECISION)
    return (rec.get("backend") != "hf", rank, rec.get("repeat") or 0, str(rec.get("cell_id")))


def pick_references(pool: Sequence[Record]) -> dict[str, Record]:
    """weights key -> its reference cell: hf before other backends, the most precise dtype,
    the first repeat, then the smallest cell id (so the choice does not depend on order)."""
    refs: dict[str, Record] = {}
    for rec in pool:
        if _check(rec) is None:
            continue
        key = weights_key(rec)
        if key not in refs or _preference(rec) < _preference(refs[key]):
            refs[key] = rec
    return refs


def first_divergence(ref: Sequence[int], got: Sequence[int]) -> int:
    """The first position where the two token lists differ (their common length if none)."""
    n = min(len(ref), len(got))
    return next((i for i in range(n) if ref[i] != got[i]), n)


def threshold(dtype: Any, ref_dtype: Any) -> float:
    """The threshold of the less precise of the two dtypes."""
    return min(THRESHOLDS.get(str(d), DEFAULT_THRESHOLD) for d in (dtype, ref_dtype))


def agreement(rec: Record, ref: Record, source: str) -> dict[str, Any]:
    """The comparison of one cell with its reference (``quality.agreement``)."""
    mine, theirs = _check(rec), _check(ref)
    assert mine is not None and theirs is not None
    key = "check_prompts_sha" if "check_prompts_sha" in mine else "check_prompts"
    same_prompts = mine.get(key) == theirs.get(key)
    out: dict[str, Any] = {
        "reference": ref.get("cell_id"), "reference_dir": ref.get("cell_dir"),
        "reference_backend": ref.get("backend"), "reference_dtype": ref.get("dtype"),
        "source": source, "dummy_weights": _dummy(rec),
    }  # fmt: skip
    if not same_prompts:
        return {**out, "verdict": "not compared: other check prompts (quality.* settings)"}
    k = min(len(t) for t in [*mine["check_tokens"], *theirs["check_tokens"]])
    firsts = [
        first_divergence(r[:k], g[:k])
        for r, g in zip(theirs["check_tokens"], mine["check_tokens"], strict=True)
    ]
    share = sum(firsts) / (k * len(firsts)) if k and firsts else None
    limit = threshold(rec.get("dtype"), ref.get("dtype"))
    divergent = share is not None and share < limit
    return {
        **out, "compared_tokens": k, "first_divergence": firsts, "agreement": share,
        "threshold": limit, "verdict": Flag.DIVERGENT.value if divergent else "ok",
    }  # fmt: skip


def annotate(records: Sequence[Record], reference: Sequence[Record] = ()) -> list[Record]:
    """Copies of ``records`` with their agreement: the flat ``agreement*`` keys,
    ``quality.agreement`` and the ``divergent`` flag. ``reference``: the records of a
    reference directory (else the sweep's own)."""
    source = "--reference" if reference else "sweep"
    refs = pick_references(reference or records)
    return [_annotated(rec, refs, source) for rec in records]


def _annotated(rec: Record, refs: dict[str, Record], source: str) -> Record:
    if _check(rec) is None:
        return rec
    ref = refs.get(weights_key(rec))
    if ref is None:
        a: dict[str, Any] = {"verdict": NO_REFERENCE, "source": source}
    elif ref.get("cell_id") == rec.get("cell_id") and source == "sweep":
        a = {"verdict": REFERENCE, "source": source, "dummy_weights": _dummy(rec), "agreement": 1.0}
    else:
        a = agreement(rec, ref, source)
    rec = {**rec, "quality": {**rec["quality"], "agreement": a}}
    rec.update(
        agreement=a.get("agreement"),
        agreement_first_divergence=min(a["first_divergence"])
        if a.get("first_divergence")
        else None,
        agreement_reference=a.get("reference"),
        agreement_verdict=a["verdict"],
    )
    if a["verdict"] == Flag.DIVERGENT.value:
        rec["flags"] = [*(rec.get("flags") or []), Flag.DIVERGENT.value]
    return rec


def row_quality(record: Record) -> dict[str, Any] | None:
    """What a sweep's driver keeps of ``record["quality"]`` for its outputs (sweep/finish.py):
    the check's tokens and the task check's score, without the prompts (their digest stays)
    or the examples; None for cells without tokens, whose flat check_status says why."""
    q = record.get("quality")
    if not isinstance(q, dict) or (q.get("check_status") != CHECK_OK and "accuracy" not in q):
        return None
    kept = {k: v for k, v in q.items() if k != "check_prompts"}
    if isinstance(q.get("accuracy"), dict):
        kept["accuracy"] = {k: v for k, v in q["accuracy"].items() if k != "examples"}
    return kept


# --- the report section ---------------------------------------------------------------


def _label(rec: Record) -> str:
    parts = [rec.get("model"), rec.get("backend"), rec.get("device"), rec.get("dtype")]
    shape = f"b{rec.get('batch')} s{rec.get('seq')} p{rec.get('prompt_len')}"
    return " · ".join(str(p) for p in parts) + f" · {shape}"


def _fmt(value: Any, spec: str = ".2f") -> str:
    return MISSING if value is None else format(value, spec)


def _agreement_table(checked: Sequence[Record]) -> Table:
    table = Table(["cell", "reference", "K", "agreement", "first divergence", "verdict"])
    for rec in checked:
        a = rec["quality"].get("agreement") or {}
        ref = a.get("reference_dir") or a.get("reference")
        ref_text = (
            MISSING
            if not ref
            else f"{ref} ({a.get('reference_backend')}, {a.get('reference_dtype')})"
        )
        firsts = a.get("first_divergence")
        table.rows.append(
            [
                _label(rec), ref_text if a.get("verdict") != REFERENCE else "itself",
                str(a.get("compared_tokens") or MISSING), _fmt(a.get("agreement")),
                ", ".join(str(f) for f in firsts) if firsts else MISSING, str(a.get("verdict")),
            ]
        )  # fmt: skip
    return table


def _agreement_lines(records: Sequence[Record]) -> list[str]:
    checked = [r for r in records if _check(r) is not None and "agreement" in r["quality"]]
    statuses = [r.get("check_status") for r in records if r.get("check_status")]
    if not checked:  # e.g. a simulator sweep: its records say not_applicable
        return []
    sources = " and ".join(sorted({str(r["quality"]["agreement"].get("source")) for r in checked}))
    limits = ", ".join(f"{d} {t:.2f}" for d, t in THRESHOLDS.items())
    lines = [
        "## Output agreement",
        "",
        "Greedy tokens of the seeded check prompts (quality.*), generated after each cell's "
        "measured window, compared with a reference cell of the same weights "
        f"(from the {sources}): agreement = share of "
        "the first K tokens before the first difference, mean over the prompts; `divergent` "
        f"below the dtype's threshold ({limits}; docs/quality.md).",
        "",
    ]
    lines += [markdown(_agreement_table(checked), numeric=False), ""]
    if any(r["quality"]["agreement"].get("dummy_weights") for r in checked):
        lines += [
            "Dummy-weight cells (model.load_format=dummy) are compared only with cells of "
            "the same backend: each loader fills its own random weights (fixed seed).",
            "",
        ]
    others = sorted({str(s) for s in statuses} - {CHECK_OK})
    for status in others:
        n = sum(r.get("check_status") == status for r in records)
        lines += [f"{n} cell(s) with check_status `{status}` are not compared.", ""]
    return lines


def _accuracy_lines(records: Sequence[Record]) -> list[str]:
    scored = [r for r in records if isinstance((r.get("quality") or {}).get("accuracy"), dict)]
    if not scored:
        return []
    table = Table(["cell", "file", "n", "correct", "score", "95% interval", "verdict"])
    for rec in scored:
        acc = rec["quality"]["accuracy"]
        low, high = acc.get("low_95"), acc.get("high_95")
        verdict = (
            Flag.ACCURACY_LOW.value
            if Flag.ACCURACY_LOW.value in (rec.get("flags") or [])
            else acc.get("status")
        )
        table.rows.append(
            [
                _label(rec), str(acc.get("path")), str(acc.get("n", MISSING)),
                str(acc.get("correct", MISSING)), _fmt(acc.get("score")),
                MISSING if low is None else f"[{low:.2f}, {high:.2f}]", str(verdict),
            ]
        )  # fmt: skip
    return [
        "## Task check",
        "",
        "Exact match on the final number of a gsm8k-style JSONL (accuracy.path), greedy, "
        "after the measured window; Wilson 95% interval; `accuracy_low` below accuracy.min.",
        "",
        markdown(table, numeric=False),
        "",
    ]


def quality_section(records: Sequence[Record]) -> list[str]:
    """The report's lines on output agreement and the task check (empty when no cell has
    either); ``records`` as :func:`annotate` returned them."""
    return _agreement_lines(records) + _accuracy_lines(records)
