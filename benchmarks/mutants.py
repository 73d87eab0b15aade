"""Remove one protection at a time and check that its tests then fail (outside CI).

    python benchmarks/mutants.py

Each mutant replaces one line (or a few) of the package, runs the tests named for it, and
restores the file (also on error or Ctrl-C). A mutant is caught when pytest exits with 1 (a
test failed). Exit status 1 if any mutant survives. It edits the files it runs: run it in a
copy of the working tree when others work in this one (PYTHONPATH=COPY python COPY/benchmarks/mutants.py).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# (protection, file, line removed, what replaces it, tests that must then fail)
MUTANTS = [
    ("sha256 check", "perceptual_sim/models/card.py", "    if digest != card.sha256:", "    if False:",
     ["tests/test_card.py::test_tensor_files_must_match_their_card",
      "tests/test_hub.py::test_tampered_tensor_file_is_refused_and_not_kept"]),
    ("hub cache eviction", "perceptual_sim/models/hub.py", "        _evict_from_hub_cache(path)", "        pass",
     ["tests/test_hub.py::test_tampered_tensor_file_is_refused_and_not_kept",
      "tests/test_hub.py::test_corrupted_cache_is_refused_then_downloaded_again"]),
    ("NaN/Inf check", "perceptual_sim/metric.py", "            if not (math.isfinite(vmin) and math.isfinite(vmax)):",
     "            if False:", ["tests/test_properties.py::test_bad_inputs_are_refused_with_a_named_reason"]),
    ("clamp tolerance", "perceptual_sim/metric.py", "RANGE_TOLERANCE = 1e-3", "RANGE_TOLERANCE = 0.0",
     ["tests/test_properties.py::test_values_just_outside_the_range_are_clamped"]),
    ("device message", "perceptual_sim/metric.py", "is on {x.device} but the model is on", "is on {x.device}",
     ["tests/test_properties.py::test_bad_inputs_are_refused_with_a_named_reason"]),
    ("frozen eval mode", "perceptual_sim/metric.py", "        return super().train(False)",
     "        return super().train(mode)", ["tests/test_metric.py::test_eval_mode_survives_train"]),
    ("eps inside the sqrt", "perceptual_sim/distances.py", "torch.rsqrt(f.pow(2).sum(dim, keepdim=True) + eps)",
     "1 / (f.pow(2).sum(dim, keepdim=True).sqrt() + eps)",
     ["tests/test_distances.py::test_zero_features_give_finite_gradients"]),
    ("pixel limit", "perceptual_sim/images.py", "    if w * h > max_pixels:", "    if False:",
     ["tests/test_images.py::test_too_many_pixels"]),
    ("decoder errors wrapped", "perceptual_sim/images.py",
     "    except Exception as exc:  # format plugins raise ValueError and others on a damaged header",
     "    except ImageError as exc:", ["tests/test_fuzz_regressions.py"]),
    # issue 11: the loss path
    ("straight-through clamp", "perceptual_sim/metric.py",
     "        x = _StraightThroughClamp.apply(x) if x.requires_grad else x.clamp(0, 1)", "        x = x.clamp(0, 1)",
     ["tests/test_loss.py::test_gradients_at_pixels_equal_to_0_and_1_are_non_zero"]),
    ("out_of_range='clamp'", "perceptual_sim/metric.py",
     '            if out_of_range == "error" and (vmin < lo - tol or vmax > hi + tol):',
     "            if vmin < lo - tol or vmax > hi + tol:",
     ["tests/test_loss.py::test_clamp_is_straight_through",
      "tests/test_loss.py::test_adam_from_noise_to_a_target_lowers_the_loss[resnet6-pa-spatial-torch.float32]"]),
    ("reduction", "perceptual_sim/metric.py",
     '        return out.mean() if reduction == "mean" else out.sum() if reduction == "sum" else out',
     '        return out.sum() if reduction != "none" else out', ["tests/test_loss.py::test_reductions"]),
    ("non-finite distance", "perceptual_sim/metric.py", "            self._check_finite(out)", "            pass",
     ["tests/test_dirs.py::test_a_non_finite_distance_is_an_error_not_a_score",
      "tests/test_dirs.py::test_one_bad_pair_never_aborts_the_run"]),
    # model files are data
    ("card field types", "perceptual_sim/models/card.py",
     "            if not isinstance(value, str) or len(value) > limit:", "            if False:",
     ["tests/test_card.py::test_hostile_card_fields_name_the_field_and_the_file[name not text]"]),
    ("arch argument bounds", "perceptual_sim/models/archs.py", "        return math.isfinite(value) and self.low <= value <= self.high",
     "        return math.isfinite(value)",
     ["tests/test_card.py::test_hostile_card_fields_name_the_field_and_the_file[huge width]",
      "tests/test_card.py::test_hostile_card_fields_name_the_field_and_the_file[huge layer count]"]),
    ("input_std bounds", "perceptual_sim/models/card.py", "all(_is_number(v) and low <= v <= high for v in value)",
     "all(_is_number(v) for v in value)",
     ["tests/test_card.py::test_hostile_card_fields_name_the_field_and_the_file[zero input_std]"]),
    ("NaN/Infinity in cards", "perceptual_sim/models/card.py",
     "data = json.loads(text, parse_constant=_no_constant, object_pairs_hook=_unique_keys)",
     "data = json.loads(text, object_pairs_hook=_unique_keys)",
     ["tests/test_card.py::test_hostile_card_fields_name_the_field_and_the_file[NaN]"]),
    ("card nesting depth", "perceptual_sim/models/card.py", "            if depth >= MAX_JSON_DEPTH:", "            if False:",
     ["tests/test_card.py::test_hostile_card_fields_name_the_field_and_the_file[nested 40 deep]"]),
    ("JSON recursion", "perceptual_sim/models/card.py", "        except RecursionError:", "        except ZeroDivisionError:",
     ["tests/test_card.py::test_hostile_card_fields_name_the_field_and_the_file[nested 100000 deep]"]),
    ("card size cap", "perceptual_sim/models/card.py", "    if len(data) > MAX_CARD_BYTES:", "    if False:",
     ["tests/test_card.py::test_undecodable_and_oversized_cards"]),
    ("regular model files", "perceptual_sim/models/card.py", "    if not stat.S_ISREG(st.st_mode):", "    if False:",
     ["tests/test_card.py::test_cards_and_tensor_files_must_be_regular_files"]),
    ("tensor dtypes", "perceptual_sim/metric.py",
     "            if t.dtype not in FLOAT_DTYPES if want.is_floating_point() else t.dtype != want.dtype:",
     "            if False:", ["tests/test_card.py::test_bad_tensors_name_the_tensor_and_the_file[int8 weights]"]),
    ("finite weights", "perceptual_sim/metric.py",
     "            if t.is_floating_point() and not torch.isfinite(t).all():", "            if False:",
     ["tests/test_card.py::test_bad_tensors_name_the_tensor_and_the_file[NaN]"]),
    ("memory estimate bound", "perceptual_sim/metric.py", "        if need > max_model_bytes:", "        if False:",
     ["tests/test_card.py::test_the_memory_bound_can_be_raised_or_lowered_explicitly",
      "tests/test_card.py::test_oversized_architectures_are_refused_before_anything_is_built"]),
    ("hub eviction on any check", "perceptual_sim/models/registry.py",
     "            raise hub.evict(model, path, exc) from None", "            raise",
     ["tests/test_hub.py::test_hub_files_failing_any_check_are_evicted_from_the_cache"]),
    ("export folder loads", "perceptual_sim/models/registry.py", "    if len(cards) == 1:", "    if False:",
     ["tests/test_cli.py::test_train_run_list_export"]),
    # images
    ("decoded formats", "perceptual_sim/images.py", "        im = Image.open(path, formats=DECODED_FORMATS)",
     "        im = Image.open(path)", ["tests/test_images.py::test_only_the_listed_formats_are_decoded_whatever_the_name"]),
    ("regular image files", "perceptual_sim/images.py", "    if not path.is_file():", "    if False:",
     ["tests/test_images.py::test_a_fifo_is_not_read"]),
    ("tile halo", "perceptual_sim/backbones/tiling.py", "        return cls(tuple(strides), align * math.ceil(reach / align))",
     "        return cls(tuple(strides), 0)", ["tests/test_tiling.py::test_tiled_equals_untiled"]),
    # dirs and the other commands
    ("one bad pair", "perceptual_sim/pairs.py", "        except Exception:\n            for item in items:",
     "        except ZeroDivisionError:\n            for item in items:",
     ["tests/test_dirs.py::test_one_bad_pair_never_aborts_the_run"]),
    ("names escaped", "perceptual_sim/cli/options.py", "    if text.isprintable():\n        return text\n    out = []",
     "    return text\n    out = []", ["tests/test_dirs.py::test_any_file_name_reaches_the_terminal_csv_and_json_safely"]),
    ("CSV formula guard", "perceptual_sim/cli/options.py",
     "    return \"'\" + value if value[:1] in (\"=\", \"+\", \"-\", \"@\") else value", "    return value",
     ["tests/test_dirs.py::test_csv_cells_never_start_a_spreadsheet_formula"]),
    ("unreadable folders", "perceptual_sim/cli/dirs.py", '            unreadable.append(f"{folder}: {exc.strerror or exc}")',
     "            pass", ["tests/test_dirs.py::test_unreadable_folders_are_reported"]),
    ("unpaired exit status", "perceptual_sim/cli/dirs.py",
     "    problems = bool(unreadable_a or unreadable_b or special or ((only_a or only_b) and not args.allow_unpaired))",
     "    problems = bool(unreadable_a or unreadable_b or special)",
     ["tests/test_dirs.py::test_unpaired_files_fail_the_run_unless_expected"]),
    ("dangling output links", "perceptual_sim/files.py", "    if os.path.lexists(path) and not force:",
     "    if path.exists() and not force:", ["tests/test_dirs.py::test_outputs_are_checked_before_any_work"]),
    ("atomic writes", "perceptual_sim/files.py", '    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)  # O_CREAT | O_EXCL',
     "    fd, name = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), str(path)", ["tests/test_dirs.py::test_outputs_are_replaced_atomically"]),
    ("bad --device", "perceptual_sim/api.py", "    if device.type not in DEVICE_TYPES:", "    if False:",
     ["tests/test_dirs.py::test_bad_device_and_empty_model"]),
    ("empty --model", "perceptual_sim/api.py", "    name = DEFAULT_MODEL if model is None else model",
     "    name = model or DEFAULT_MODEL", ["tests/test_dirs.py::test_bad_device_and_empty_model"]),
    ("proxy monotonicity", "perceptual_sim/lab/evaluate/proxy.py",
     '        per_kind["mean"] = float(np.mean([per_kind[k] for k in DISTORTIONS]))',
     '        per_kind["mean"] = float(np.median([per_kind[k] for k in DISTORTIONS]))',
     ["tests/test_eval_proxy.py::test_scores_follow_the_protocol"]),
    # training resumes where it stopped
    ("resume restores the RNG", "perceptual_sim/lab/train.py", '        gen.set_state(state["rng"])', "        pass",
     ["tests/test_train.py::test_an_interrupted_run_resumes_to_the_uninterrupted_result"]),
    ("resume restores momentum", "perceptual_sim/lab/train.py",
     '                    opt.state[p][key] = state[f"optim.{i}.{key}"]', "                    pass",
     ["tests/test_train.py::test_an_interrupted_run_resumes_to_the_uninterrupted_result"]),
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
