"""Print, for every measured vLLM start-up row, predicted vs measured for each term.

Usage: ``python scripts/calibration_report.py``. Sizes in GiB per GPU.
"""

from __future__ import annotations

from cfgexplorer.calibration import compare, rows

TERMS = ("weights", "activation", "non_torch", "kv_pool")


def main() -> int:
    worst = dict.fromkeys((*TERMS, "tokens_pct", "weights_pct"), 0.0)
    verdicts_ok = 0
    all_rows = rows()
    header = f"{'case':58s} {'prof':5s} " + " ".join(f"{t:>17s}" for t in TERMS)
    print(header + f" {'tokens pred/meas':>24s} verdict")
    for row in all_rows:
        r = compare(row)
        ok = r["predicted_fits"] == (row.status == "ok")
        verdicts_ok += ok
        if "error" in r or row.status != "ok":
            print(
                f"{row.case[:58]:58s} {row.profile[-4:]:5s} measured {row.status}, predicted "
                f"{'fits' if r['predicted_fits'] else 'fails'}: "
                f"{r.get('error') or '; '.join(r.get('problems') or [])}"[:300]
            )
            continue
        cells = []
        for t in TERMS:
            pred, meas = r[t]
            cells.append(f"{pred:7.2f}/{meas:6.2f}{pred - meas:+5.2f}"[:17].rjust(17))
            if meas is not None:
                worst[t] = max(worst[t], abs(pred - meas))
        wp, wm = r["weights"]
        worst["weights_pct"] = max(worst["weights_pct"], abs(wp - wm) / wm * 100)
        tp_, tm = r["kv_tokens"]
        tok = ""
        if tm:
            err = (tp_ - tm) / tm * 100
            worst["tokens_pct"] = max(worst["tokens_pct"], abs(err))
            tok = f"{tp_:>10,}/{tm:>10,} {err:+.1f}%"
        print(
            f"{row.case[:58]:58s} {row.profile[-4:]:5s} "
            + " ".join(cells)
            + f" {tok:>24s} "
            + ("ok" if ok else "WRONG")
        )
    print()
    print(f"verdicts correct: {verdicts_ok}/{len(all_rows)}")
    print("largest absolute errors (GiB): " + ", ".join(f"{t} {worst[t]:.2f}" for t in TERMS))
    print(
        f"largest weights error: {worst['weights_pct']:.2f}%; "
        f"largest KV tokens error: {worst['tokens_pct']:.2f}%"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
