"""Build the CUDA Rodas4 kernel of the full model for a GPU without having one: compile time, code size,
registers, local memory and spills, and the occupancy they allow.

Usage::

    pip install -e ".[gpu-build]"     # numba-cuda, NVVM, NVRTC and ptxas from NVIDIA's wheels (about 400 MB)
    python benchmarks/gpu_build.py --out results/benchmarks/gpu_build                  # sm_90 (H100, H200)
    python benchmarks/gpu_build.py --cc 8.0 --max-registers 255,168,128 --out /tmp/b     # A100; register caps

What it does: the kernel module that ``RodasSolver(backend="cuda")`` would load for the full model
(:func:`moa.solvers.rodas4.cuda.kernels_for_model`, the same text) is compiled by numba-cuda to PTX for
compute capability ``--cc`` (``numba.cuda.compile_ptx``; the device functions, which numba-cuda compiles
for "the current device", are told that device has ``--cc``), then assembled by ``ptxas -v`` for each
register cap in ``--max-registers``. The first device run (2026-11-30) measured the same kernel's first
launch on an H200 at 161 s, 255 registers and 21,712 bytes of local memory per thread; this script
measures what a change does to those numbers here, in two minutes on a laptop core, so that the few
minutes of a device session go to throughput.

Reported: seconds in numba's front end and lowering, in NVVM and in ptxas; PTX size; per register cap,
registers, stack frame (per-thread local memory: work arrays and spills), spill stores and loads (bytes
of spill instructions in the code, not bytes moved at run time) and the occupancy the registers allow
at ``THREADS_PER_BLOCK`` (:func:`moa.solvers.rodas4.cuda.occupancy`). With ``--compare-lowering`` the
PTX is built a second time, in a process of its own, without moa's linear replacement of numba-cuda's
quadratic lowering step (``cuda.speed_up_numba_cuda_compile``), and the two PTX texts are compared line for
line (symbol names masked, order of declarations aside).

Not measured here: anything about speed on the card. Writes ``gpu_build.json`` and ``gpu_build.md``.
"""

from __future__ import annotations

import argparse
import datetime
import glob
import importlib.metadata
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def find_ptxas() -> str | None:
    """ptxas from NVIDIA's ``nvidia-cuda-nvcc-cu12`` wheel, else from PATH."""
    import site

    roots = site.getsitepackages() + [site.getusersitepackages()]
    for root in roots:
        hits = glob.glob(os.path.join(root, "nvidia", "cuda_nvcc", "bin", "ptxas"))
        if hits:
            return hits[0]
    return shutil.which("ptxas")


def pretend_device(cc: tuple[int, int]) -> None:
    """numba-cuda compiles device functions for the current device's compute capability; without a GPU, say
    it is ``cc`` (only this script does this)."""
    from numba.cuda import dispatcher

    class _Device:
        compute_capability = cc

    dispatcher.get_current_device = lambda: _Device()


def kernel_signature():
    """numba types of ``integrate_kernel``'s arguments, in the order ``cuda.integrate_batch_cuda`` passes them."""
    from numba import types

    f1, f2, f3 = (types.Array(types.float64, d, "C") for d in (1, 2, 3))
    i1, b1 = types.Array(types.int64, 1, "C"), types.Array(types.boolean, 1, "C")
    f8, i8 = types.float64, types.int64
    # Y0, P, t0, t1, t_out, k0, atol, rtol, h0, max_steps, h_min, dense_output, fixed_step,
    # y_out, y_final, status, t_reached, n_steps, n_rej, h_last, last_nonfinite, h_now, ext_idx, ext_thr, ext_day,
    # next_job (the work counter), order
    inputs = (f2, f2, f8, f8, f1, i8, f1, f8, f1, i8, f8, types.boolean, f8)
    return inputs + (f3, f2, i1, f1, i1, i1, f1, b1, f1, i1, f2, f2, i1, i1)


def build_ptx(module_path: pathlib.Path, cc: tuple[int, int]) -> dict:
    """Compile ``integrate_kernel`` of the module at ``module_path`` to PTX in a fresh process-local import;
    returns ptx text and seconds (front end + lowering, NVVM)."""
    import importlib.util

    from numba import cuda
    from numba.cuda.cudadrv import nvvm

    nvvm_seconds = [0.0]
    own = nvvm.compile_ir

    def timed(*args, **kwargs):
        t = time.perf_counter()
        try:
            return own(*args, **kwargs)
        finally:
            nvvm_seconds[0] += time.perf_counter() - t

    nvvm.compile_ir = timed
    try:
        name = "moa_gpu_build"
        spec = importlib.util.spec_from_file_location(name, module_path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        t = time.perf_counter()
        ptx, _ = cuda.compile_ptx(mod.integrate_kernel.py_func, kernel_signature(), cc=cc)
        total = time.perf_counter() - t
    finally:
        nvvm.compile_ir = own
    return {"ptx": ptx, "seconds": total, "nvvm_seconds": nvvm_seconds[0]}


def assemble(ptxas: str, ptx_path: pathlib.Path, cc: tuple[int, int], max_registers: int) -> dict:
    """``ptxas -v`` of the PTX for ``sm_<cc>`` under a register cap: the kernel entry's numbers."""
    arch = f"sm_{cc[0]}{cc[1]}"
    cmd = [ptxas, "-v", "-O3", "--gpu-name", arch, f"--maxrregcount={max_registers}", str(ptx_path)]
    cmd += ["-o", str(ptx_path.with_suffix(f".{max_registers}.cubin"))]
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"ptxas failed ({proc.returncode}): {proc.stderr[-2000:]}")
    text = proc.stderr
    entry = text[text.index("Compiling entry function") :]
    frame = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", entry)
    regs = re.search(r"Used (\d+) registers", entry)
    from moa.solvers.rodas4.cuda import occupancy

    registers = int(regs.group(1))
    return {
        "max_registers": max_registers,
        "ptxas_seconds": seconds,
        "registers_per_thread": registers,
        "stack_frame_bytes": int(frame.group(1)),
        "spill_store_bytes": int(frame.group(2)),
        "spill_load_bytes": int(frame.group(3)),
    } | occupancy(registers)


def markdown(report: dict) -> str:
    b = report["build"]
    lines = [
        f"CUDA Rodas4 kernel of {report['model']}, built for sm_{report['cc'].replace('.', '')} without a GPU "
        f"({report['date']}, moa {report['moa_version']}, numba-cuda {report['numba_cuda']}, {report['cpu']})",
        "",
        f"- {report['model']}: states {report['n_states']}, LU slots {report['n_slots']}; "
        f"PTX {b['ptx_kb']:.0f} kB, {b['ptx_lines']} lines",
        f"- numba front end, lowering and NVVM: {b['seconds']:.1f} s (NVVM {b['nvvm_seconds']:.1f} s)",
    ]
    if "without_linear_lowering" in report:
        w = report["without_linear_lowering"]
        lines.append(
            f"- the same without moa's linear lowering step: {w['seconds']:.1f} s; PTX identical "
            f"(declaration order aside): {w['same_ptx']}"
        )
    lines += [
        "",
        "| register cap | registers | stack frame (B) | spill stores (B) | spill loads (B) "
        "| threads/SM | occupancy | ptxas (s) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in report["assembled"]:
        lines.append(
            f"| {r['max_registers']} | {r['registers_per_thread']} | {r['stack_frame_bytes']} | "
            f"{r['spill_store_bytes']} | {r['spill_load_bytes']} | {r['max_active_threads_per_sm']} | "
            f"{r['occupancy']:.1%} | {r['ptxas_seconds']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cc", default="9.0", help="compute capability, e.g. 9.0 (H100/H200), 8.0 (A100)")
    ap.add_argument("--max-registers", default="255", help="comma-separated register caps for ptxas")
    ap.add_argument("--compare-lowering", action="store_true", help="also build without the linear lowering step")
    ap.add_argument("--lowering-only", metavar="PTX_PATH", help=argparse.SUPPRESS)
    ap.add_argument(
        "--drugs", nargs="+", default=None, help="build full_model(drugs=...) instead, e.g. --drugs bsab (39 states)"
    )
    ap.add_argument("--out", default=str(ROOT / "results" / "benchmarks" / "gpu_build"))
    args = ap.parse_args(argv)
    try:
        cc = tuple(int(x) for x in args.cc.split("."))
        caps = [int(x) for x in args.max_registers.split(",")]
    except ValueError:
        ap.error(f"--cc {args.cc!r} / --max-registers {args.max_registers!r}: expected e.g. 9.0 and 255,128")
    if len(cc) != 2 or any(not 16 <= c <= 255 for c in caps):
        ap.error(f"--cc {args.cc!r} must be MAJOR.MINOR and register caps in 16..255, got {caps}")
    os.environ.pop("NUMBA_ENABLE_CUDASIM", None)
    ptxas = find_ptxas()
    if ptxas is None:
        sys.exit("ptxas not found: pip install -e '.[gpu-build]' (NVIDIA's nvidia-cuda-nvcc-cu12 wheel)")
    try:
        numba_cuda_version = importlib.metadata.version("numba-cuda")
    except importlib.metadata.PackageNotFoundError:
        sys.exit("numba-cuda is not installed: pip install -e '.[gpu-build]'")

    import platform

    import moa
    from moa.codegen import compile_model
    from moa.codegen.cache import atomic_write
    from moa.solvers.rodas4 import cuda as mcuda
    from moa.solvers.rodas4 import numba_kernels
    from moa.symbolic.named_models import full_model

    pretend_device(cc)
    if not args.lowering_only:
        log("kernel text of the model (the numba backend's module, read from the cache when there)")
    model = full_model(tuple(args.drugs) if args.drugs else None)
    cpu = numba_kernels.kernels_for_model(compile_model(model))
    source = mcuda.cuda_source(numba_kernels.read_verified(cpu.path), cpu.plan)
    out = pathlib.Path(args.out)
    report = {
        "date": datetime.date.today().isoformat(),
        "moa_version": moa.__version__,
        "numba_cuda": numba_cuda_version,
        "cpu": platform.processor() or platform.machine(),
        "cc": f"{cc[0]}.{cc[1]}",
        "model": model.name,
        "n_states": cpu.plan.n,
        "n_slots": int(cpu.plan.nnz_fill),
    }
    with tempfile.TemporaryDirectory() as tmp:
        module_path = pathlib.Path(tmp) / "moa_rodas_cuda_build.py"
        module_path.write_text(source)
        if args.lowering_only:  # the child of --compare-lowering: numba-cuda's own lowering, PTX to a file
            built = build_ptx(module_path, cc)
            pathlib.Path(args.lowering_only).write_text(built.pop("ptx"))
            print(json.dumps(built))
            return 0
        other = None
        if args.compare_lowering:
            # in a process of its own: the linear step, once installed, cannot be taken out cleanly
            log(f"numba-cuda -> PTX for sm_{cc[0]}{cc[1]}, numba-cuda's own lowering step (a child process)")
            other_ptx = pathlib.Path(tmp) / "numba_cuda_lowering.ptx"
            child = [sys.executable, __file__, "--cc", args.cc, "--lowering-only", str(other_ptx), "--out", tmp]
            child += ["--drugs", *args.drugs] if args.drugs else []
            proc = subprocess.run(child, capture_output=True, text=True)
            if proc.returncode != 0:
                raise RuntimeError(f"the build without the linear lowering step failed: {proc.stderr[-2000:]}")
            other = json.loads(proc.stdout.strip().splitlines()[-1]) | {"ptx": other_ptx.read_text()}
            log(f"  {other['seconds']:.1f} s (NVVM {other['nvvm_seconds']:.1f} s)")
        mcuda.speed_up_numba_cuda_compile()
        log(f"numba-cuda -> PTX for sm_{cc[0]}{cc[1]}, moa's linear lowering step")
        built = build_ptx(module_path, cc)
        log(f"  {built['seconds']:.1f} s (NVVM {built['nvvm_seconds']:.1f} s)")
        ptx = built["ptx"]
        report["build"] = {
            "seconds": built["seconds"],
            "nvvm_seconds": built["nvvm_seconds"],
            "ptx_kb": len(ptx) / 1e3,
            "ptx_lines": ptx.count("\n"),
        }
        if other is not None:

            def lines(text: str) -> list[str]:
                # symbol names carry the module's name and numba's version counters, and global declarations
                # come in a set's order: compare the sorted lines with symbols masked
                return sorted(re.sub(r"_ZN[0-9A-Za-z_$]+", "<symbol>", line) for line in text.splitlines())

            report["without_linear_lowering"] = {
                "seconds": other["seconds"],
                "nvvm_seconds": other["nvvm_seconds"],
                "same_ptx": lines(other["ptx"]) == lines(ptx),
            }
        ptx_path = pathlib.Path(tmp) / "kernel.ptx"
        ptx_path.write_text(ptx)
        report["assembled"] = []
        for cap in caps:
            log(f"ptxas -v, register cap {cap}")
            report["assembled"].append(assemble(ptxas, ptx_path, cc, cap))
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "gpu_build.json", json.dumps(report, indent=2) + "\n")
    atomic_write(out / "gpu_build.md", markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
