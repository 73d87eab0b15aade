"""Remove one protection at a time and check that its tests then fail (outside CI).

    python benchmarks/mutants.py

Each mutant replaces one line of the package, runs the tests named for it, and restores the
file (also on error or Ctrl-C). A mutant is caught when pytest exits with 1 (a test failed).
Exit status 1 if any mutant survives.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# (protection, file, line removed, what replaces it, tests that must then fail)
MUTANTS = [
    ("sha256 check", "perceptual_sim/weights.py", "    if digest != card.sha256:", "    if False:",
     ["tests/test_metric.py::test_strict_loading_and_hash",
      "tests/test_hub.py::test_tampered_tensor_file_is_refused_and_not_kept"]),
    ("hub cache eviction", "perceptual_sim/weights.py", "            _evict_from_hub_cache(path)", "            pass",
     ["tests/test_hub.py::test_tampered_tensor_file_is_refused_and_not_kept",
      "tests/test_hub.py::test_corrupted_cache_is_refused_then_downloaded_again"]),
    ("NaN/Inf check", "perceptual_sim/metric.py", "            if not torch.isfinite(x).all():", "            if False:",
     ["tests/test_properties.py::test_bad_inputs_are_refused_with_a_named_reason"]),
    ("clamp tolerance", "perceptual_sim/metric.py", "RANGE_TOLERANCE = 1e-3", "RANGE_TOLERANCE = 0.0",
     ["tests/test_properties.py::test_values_just_outside_the_range_are_clamped"]),
    ("device message", "perceptual_sim/metric.py", "is on {x.device} but the model is on", "is on {x.device}",
     ["tests/test_metric.py::test_device_mismatch_is_named"]),
    ("frozen eval mode", "perceptual_sim/metric.py", "        return super().train(False)",
     "        return super().train(mode)", ["tests/test_metric.py::test_eval_mode_survives_train"]),
    ("eps inside the sqrt", "perceptual_sim/distances.py", "torch.rsqrt(f.pow(2).sum(dim, keepdim=True) + eps)",
     "1 / (f.pow(2).sum(dim, keepdim=True).sqrt() + eps)",
     ["tests/test_distances.py::test_zero_features_give_finite_gradients"]),
    ("pixel limit", "perceptual_sim/images.py", "        if w * h > max_pixels:", "        if False:",
     ["tests/test_images.py::test_too_many_pixels"]),
    ("decoder errors wrapped", "perceptual_sim/images.py",
     "    except Exception as exc:  # format plugins raise ValueError and others on a damaged header",
     "    except ImageError as exc:", ["tests/test_fuzz_regressions.py"]),
]


def main() -> int:
    survivors = []
    for name, rel, old, new, tests in MUTANTS:
        path = ROOT / rel
        original = path.read_text()
        if original.count(old) != 1:
            raise SystemExit(f"{name}: the line to replace is not in {rel} exactly once; update MUTANTS")
        try:
            path.write_text(original.replace(old, new))
            start = time.time()
            cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests]
            r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
        finally:
            path.write_text(original)
        caught = r.returncode == 1
        if not caught:
            survivors.append(name)
        last = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else r.stderr.strip()[-200:]
        verdict = "caught" if caught else f"SURVIVED (pytest exit {r.returncode})"
        print(f"{name:24s} {verdict:28s} {last}  ({time.time() - start:.0f} s)", flush=True)
    print("every mutant caught" if not survivors else f"survivors: {', '.join(survivors)}")
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
