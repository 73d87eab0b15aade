"""Fuzz ``perceptual_sim.images.load_image`` and ``pil_to_tensor`` with mutated image files (outside CI).

    python benchmarks/fuzz_images.py --seconds 180

Seeds are small valid PNG, JPEG, TIFF, WebP and BMP files (grey, 16-bit, palette, alpha,
EXIF-rotated, animated), short ones (a PNG whose complete zlib stream holds half its rows, a WebP
cut inside its bitstream with consistent chunk sizes, a TIFF whose header promises twice the rows
its strip holds), a multi-page TIFF, and files of formats that must be refused whatever their name
(GIF, PostScript, PPM, ICO and TGA). Each input goes through ``load_image`` (the file) and through
``pil_to_tensor`` on the object a caller's unrestricted ``Image.open`` gives. Every input must
either load as a finite 3 x H x W float32 tensor in [0, 1] of at most ``--max-pixels`` pixels,
decoded by one of the formats images.py allows (for the file: the restricted decoder set; for
the PIL object: refused before decoding unless its format is allowed), or raise ``ImageError``;
and no input may start a process (Pillow's PostScript decoder runs Ghostscript). Anything else (another
exception, a wrong tensor, another decoder, a process) is a finding: its input is written to
``--findings`` once per (exception type, place) and fuzzing goes on. A hang (over
``--timeout`` seconds for one input) or a crash of the interpreter stops libFuzzer, which
writes the input beside the findings. The exit status is 1 when there are findings.

The engine is atheris (libFuzzer, coverage-guided over Pillow's Python plugins and
images.py) when it is installed, else hypothesis on the seeds with random byte edits.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import shutil
import struct
import sys
import tempfile
import time
import traceback
import warnings
import zlib
from pathlib import Path

import numpy as np

TOKENS = [b"IHDR", b"IDAT", b"IEND", b"PLTE", b"tRNS", b"eXIf", b"iCCP", b"zTXt", b"acTL", b"fcTL", b"fdAT",
          b"\xff\xd8", b"\xff\xe1", b"\xff\xdb", b"\xff\xc0", b"\xff\xc4", b"\xff\xda", b"\xff\xd9", b"Exif\x00\x00",
          b"II*\x00", b"MM\x00*", b"GIF89a", b"NETSCAPE2.0", b"RIFF", b"WEBPVP8 ", b"WEBPVP8L", b"VP8X", b"BM",
          b"%!PS-Adobe-3.0", b"%%BoundingBox:", b"\xc5\xd0\xd3\xc6", b"8BPS", b"P6", b"\x00\x00\x01\x00"]
EPS = (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 16 16\n%%EndComments\n"
       b"newpath 0 0 moveto 16 16 lineto stroke\nshowpage\n%%EOF\n")
SPAWN_EVENTS = ("subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn")


def seeds() -> dict[str, bytes]:
    """Small valid files of the formats and modes that load_image handles."""
    from PIL import Image

    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (12, 10, 3), dtype=np.uint8))
    grey16 = Image.fromarray(rng.integers(0, 65536, (9, 7), dtype=np.uint16))
    rgba = rgb.convert("RGBA")
    rgba.putalpha(128)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate
    out: dict[str, bytes] = {}

    def put(name: str, im: Image.Image, fmt: str, **kwargs: object) -> None:
        buffer = io.BytesIO()
        im.save(buffer, format=fmt, **kwargs)
        out[name] = buffer.getvalue()

    put("rgb.png", rgb, "PNG")
    put("rgba.png", rgba, "PNG")
    put("grey16.png", grey16, "PNG")
    put("palette-transparent.png", rgb.convert("P"), "PNG", transparency=3)
    put("exif.png", rgb, "PNG", exif=exif)
    put("rgb.jpg", rgb, "JPEG", quality=80, exif=exif)
    put("grey-progressive.jpg", rgb.convert("L"), "JPEG", progressive=True)
    put("cmyk.jpg", rgb.convert("CMYK"), "JPEG")
    put("anim.gif", rgb.convert("P"), "GIF", save_all=True, append_images=[rgb.rotate(90).convert("P")])
    put("raw.tif", rgb, "TIFF")
    put("lzw16.tif", grey16, "TIFF", compression="tiff_lzw")
    put("float.tif", Image.fromarray(rng.random((6, 5), dtype=np.float32)), "TIFF")
    put("lossy.webp", rgb, "WEBP", quality=50)
    put("alpha-lossless.webp", rgba, "WEBP", lossless=True)
    put("rgb.bmp", rgb, "BMP")
    out.update(short_seeds(out))
    pages = io.BytesIO()
    rgb.save(pages, format="TIFF", save_all=True, append_images=[rgb.rotate(90)])
    out["pages.tif"] = pages.getvalue()
    # refused whatever their name: each must raise ImageError, mutated or not
    out["postscript.eps"] = EPS
    put("rgb.ppm", rgb, "PPM")
    put("rgb.ico", rgb, "ICO")
    put("rgb.tga", rgb, "TGA")
    return out


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def short_seeds(valid: dict[str, bytes]) -> dict[str, bytes]:
    """Files whose pixel data stops early while their structure stays consistent (each must raise ImageError)."""
    rows = b"".join(b"\x00" + bytes(range(i, i + 30)) for i in range(6))  # 6 of 12 rows of 10 RGB pixels
    png = (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", 10, 12, 8, 2, 0, 0, 0))
           + _chunk(b"IDAT", zlib.compress(rows)) + _chunk(b"IEND", b""))
    webp = valid["lossy.webp"]
    kind, size = webp[12:16], struct.unpack("<I", webp[16:20])[0]
    payload = webp[20 : 20 + size][: size // 2 & ~1]
    body = b"WEBP" + kind + struct.pack("<I", len(payload)) + payload
    tif = bytearray(valid["raw.tif"])  # little-endian, IFD first: double ImageLength and RowsPerStrip
    ifd = struct.unpack("<I", tif[4:8])[0]
    for i in range(struct.unpack("<H", tif[ifd : ifd + 2])[0]):
        entry = ifd + 2 + 12 * i
        tag, kind_code = struct.unpack("<HH", tif[entry : entry + 4])
        if tag in (257, 278):
            fmt = "<H" if kind_code == 3 else "<I"
            (rows_now,) = struct.unpack_from(fmt, tif, entry + 8)
            struct.pack_into(fmt, tif, entry + 8, 2 * rows_now)
    return {"short.png": png, "short.webp": b"RIFF" + struct.pack("<I", len(body)) + body, "short.tif": bytes(tif)}


class Target:
    """Loads one input through load_image and records findings (unexpected outcomes)."""

    def __init__(self, findings: Path, max_pixels: int, seconds: float) -> None:
        from PIL import Image

        from perceptual_sim.images import DECODED_FORMATS, ImageError, load_image, pil_to_tensor

        self.load, self.from_pil, self.error = load_image, pil_to_tensor, ImageError
        self.unrestricted_open = Image.open
        self.allowed = {*DECODED_FORMATS, "MPO"}  # MPO: JPEG's multi-picture variant, opened by its decoder
        self.opened: list[str | None] = []
        self.spawned: list[str] = []
        opener = Image.open

        def recording_open(*args: object, **kwargs: object) -> Image.Image:
            im = opener(*args, **kwargs)
            self.opened.append(im.format)
            return im

        Image.open = recording_open  # images.py looks Image.open up on every call
        sys.addaudithook(lambda event, _: self.spawned.append(event) if event.startswith(SPAWN_EVENTS) else None)
        self.findings, self.max_pixels = findings, max_pixels
        self.work = Path(tempfile.mkdtemp(dir="/dev/shm" if Path("/dev/shm").is_dir() else None))
        self.path = self.work / "input"
        self.start, self.seconds = time.monotonic(), seconds
        self.inputs = 0
        self.signatures: set[str] = set()

    def expired(self) -> bool:
        return time.monotonic() - self.start > self.seconds

    def summary(self, engine: str) -> int:
        """Print what was done and found, remove the work folder; the exit status (1 if there are findings)."""
        print(f"{engine}: {self.inputs} inputs in {time.monotonic() - self.start:.0f} s, "
              f"{len(self.signatures)} finding(s) {sorted(self.signatures)} in {self.findings}", flush=True)
        shutil.rmtree(self.work, ignore_errors=True)
        return 1 if self.signatures else 0

    def __call__(self, data: bytes) -> None:
        self.inputs += 1
        self.path.write_bytes(data)
        self.opened.clear()
        self.spawned.clear()
        try:
            self.check(self.load(self.path, max_pixels=self.max_pixels))
        except self.error:
            pass
        except Exception as exc:  # a finding: anything but ImageError
            self.record(exc, data)
        wrong = f"opened as {self.opened}, not one of {sorted(self.allowed)}"
        broken_pil = ""
        try:  # a caller's own Image.open (every format): it may fail as it likes
            im = self.unrestricted_open(self.path)
        except Exception:
            im = None
        if im is not None:
            with im:
                try:  # pil_to_tensor must give a good tensor of an allowed format, or raise ImageError
                    self.check(self.from_pil(im, max_pixels=self.max_pixels))
                    if im.format not in self.allowed:
                        broken_pil = f"pil_to_tensor decoded a {im.format} image"
                except self.error:
                    pass
                except Exception as exc:
                    self.record(exc, data)
        for broken, message in ((bool(broken_pil), broken_pil), (not set(self.opened) <= self.allowed, wrong),
                                (bool(self.spawned), f"started a process: {self.spawned}")):
            if broken:  # whether or not the load then failed
                try:
                    raise AssertionError(message)
                except AssertionError as exc:
                    self.record(exc, data)

    def refuses_short_seeds(self) -> None:
        """The short and multi-page seeds, unmutated, must raise ImageError from both paths (else a finding)."""
        for name, data in seeds().items():
            if not name.startswith(("short.", "pages.")):
                continue
            self.path.write_bytes(data)
            for label, read in (("load_image", self.load), ("pil_to_tensor", lambda p, **k: self.from_pil(self.unrestricted_open(p), **k))):
                try:
                    read(self.path, max_pixels=self.max_pixels)
                except self.error:
                    continue
                try:
                    raise AssertionError(f"{label} accepted the seed {name}")
                except AssertionError as exc:
                    self.record(exc, data)

    def check(self, x: object) -> None:
        """``x`` is a finite 3 x H x W float tensor in [0, 1] of at most ``max_pixels`` pixels."""
        _, h, w = x.shape
        assert x.dim() == 3 and x.shape[0] == 3 and h * w <= self.max_pixels, f"shape {tuple(x.shape)}"
        assert x.dtype.is_floating_point and x.isfinite().all(), f"dtype {x.dtype} or non-finite values"
        assert 0 <= float(x.min()) and float(x.max()) <= 1, "values outside [0, 1]"

    def record(self, exc: Exception, data: bytes) -> None:
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        signature = f"{type(exc).__name__}@{Path(frame.filename).name}:{frame.lineno}"
        if signature in self.signatures:
            return
        self.signatures.add(signature)
        self.findings.mkdir(parents=True, exist_ok=True)
        name = f"{signature.replace('@', '-').replace(':', '-')}-{hashlib.sha1(data).hexdigest()[:12]}.bin"
        (self.findings / name).write_bytes(data)
        print(f"FINDING {signature}: {type(exc).__name__}: {str(exc)[:300]} -> {self.findings / name}", flush=True)


def fuzz_atheris(target: Target, timeout: int) -> None:
    """Run libFuzzer until the time is up, then exit the process (libFuzzer never returns)."""
    import atheris

    corpus, dictionary = target.work / "corpus", target.work / "tokens.dict"
    corpus.mkdir()
    for name, data in seeds().items():
        (corpus / name).write_bytes(data)
    dictionary.write_text("".join('"' + "".join(f"\\x{b:02x}" for b in t) + '"\n' for t in TOKENS))
    target.findings.mkdir(parents=True, exist_ok=True)

    def one_input(data: bytes) -> None:
        if target.expired():
            sys.stdout.flush()
            os._exit(target.summary("atheris"))
        target(data)

    atheris.Setup([sys.argv[0], f"-timeout={timeout}", "-rss_limit_mb=4096", "-max_len=65536",
                   f"-dict={dictionary}", f"-artifact_prefix={target.findings}/", str(corpus)], one_input)
    atheris.Fuzz()


def fuzz_hypothesis(target: Target) -> None:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    edit = st.tuples(st.sampled_from(["overwrite", "insert", "delete", "truncate"]), st.floats(0, 1),
                     st.binary(min_size=1, max_size=16))

    def mutate(data: bytes, edits: list[tuple[str, float, bytes]]) -> bytes:
        for op, where, chunk in edits:
            i = int(where * len(data))
            if op == "overwrite":
                data = data[:i] + chunk + data[i + len(chunk):]
            elif op == "insert":
                data = data[:i] + chunk + data[i:]
            elif op == "delete":
                data = data[:i] + data[i + len(chunk):]
            else:
                data = data[:i]
        return data

    @settings(max_examples=500, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(st.sampled_from(sorted(seeds().values())), st.lists(edit, max_size=6))
    def run(seed: bytes, edits: list[tuple[str, float, bytes]]) -> None:
        target(mutate(seed, edits))

    while not target.expired():
        run()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=int, default=180, help="how long to fuzz (default 180)")
    p.add_argument("--findings", type=Path, default=Path(tempfile.gettempdir(), "perceptual_sim-fuzz"),
                   help="where unexpected inputs go (default: TMPDIR/perceptual_sim-fuzz)")
    p.add_argument("--max-pixels", type=int, default=1 << 20, help="load_image's limit (default 2**20)")
    p.add_argument("--timeout", type=int, default=10, help="seconds one input may take (atheris)")
    p.add_argument("--engine", choices=["auto", "atheris", "hypothesis"], default="auto")
    args = p.parse_args(argv)
    warnings.simplefilter("ignore")  # Pillow warns about odd metadata; only errors matter here
    try:
        import atheris
    except ImportError:
        atheris = None
    if args.engine == "atheris" or (args.engine == "auto" and atheris is not None):
        with atheris.instrument_imports(include=["PIL", "perceptual_sim.images"]):
            from PIL import Image

            Image.init()  # import every format plugin now, so that it is instrumented
            import perceptual_sim.images  # noqa: F401
        target = Target(args.findings, args.max_pixels, args.seconds)
        target.refuses_short_seeds()
        fuzz_atheris(target, args.timeout)
    target = Target(args.findings, args.max_pixels, args.seconds)
    target.refuses_short_seeds()
    fuzz_hypothesis(target)
    return target.summary("hypothesis")


if __name__ == "__main__":
    sys.exit(main())
