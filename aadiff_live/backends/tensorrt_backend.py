"""The TensorRT backend: plans built from the verified ONNX graphs, run with torch CUDA buffers.

THE PATH WITH THE LEAST TEST COVERAGE. TensorRT cannot be installed on the machines this project
is developed and tested on (its wheels come from NVIDIA's index), so this module has never run
in CI: what is tested is the ONNX graph it is built from (same export, same inputs, verified
against torch in ONNX Runtime) and the error without TensorRT. It follows TensorRT 10's
documented Python API (``OnnxParser.parse_from_file``, one optimization profile,
``execute_async_v3``). Engines are not portable: the manifest records the TensorRT version and
the GPU, and a plan built for another one is rebuilt, never loaded.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from aadiff_live.backends.base import Backend, EngineLoadError
from aadiff_live.backends.engines import Engine, check_engine, default_engines_dir, ensure_engine
from aadiff_live.backends.onnx_backend import engine_specs, ensure_onnx_engines
from aadiff_live.errors import UserError

log = logging.getLogger(__name__)

PLAN_NAME = "model.plan"
INSTALL_HINT = ("--backend tensorrt needs NVIDIA TensorRT, which is not installed: on a machine with an NVIDIA "
                "GPU run `pip install --extra-index-url https://pypi.nvidia.com tensorrt`, or use --backend "
                "torch or onnxruntime")


def _trt():
    """Import tensorrt lazily; without it, a one-line UserError that says how to install it."""
    try:
        import tensorrt as trt
    except ImportError:
        raise UserError(INSTALL_HINT) from None
    return trt


def _check_device(device: torch.device) -> None:
    if device.type != "cuda" or not torch.cuda.is_available():
        raise UserError("--backend tensorrt runs on an NVIDIA GPU; use --device cuda, or --backend onnxruntime "
                        "or torch on this machine")


def _specs(components, device: torch.device, dtype: torch.dtype, width: int, height: int):
    trt = _trt()
    precision = "fp32" if dtype == torch.float32 else "fp16"
    return engine_specs(components, width=width, height=height, precision=precision, backend="tensorrt",
                        device=torch.cuda.get_device_name(device), lib_version=trt.__version__)


def _build_plan(onnx_path: Path, plan_path: Path, precision: str, batch_max: int) -> None:
    trt = _trt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch (the only mode in TensorRT 10)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):  # reads the external-data file beside it
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    if precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        inp = network.get_input(i)
        rest = tuple(inp.shape)[1:]
        profile.set_shape(inp.name, (1, *rest), (batch_max, *rest), (batch_max, *rest))
    config.add_optimization_profile(profile)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise RuntimeError(f"TensorRT failed to build an engine from {onnx_path} (see its log above)")
    plan_path.write_bytes(bytes(plan))


def ensure_tensorrt_engines(components, device: torch.device, dtype: torch.dtype, *, width: int, height: int,
                            engines_dir=None, force: bool = False, build: bool = True) -> list[Engine]:
    """Plans for the UNet and decoder, built from the fp32 ONNX engines (built first if needed)."""
    _trt()
    _check_device(device)
    cpu = torch.device("cpu")
    onnx_engines = ensure_onnx_engines(components, cpu, torch.float32, width=width, height=height,
                                       engines_dir=engines_dir, build=build)
    out = []
    for spec, src in zip(_specs(components, device, dtype, width, height), onnx_engines, strict=True):
        batch_max = spec.batch_max if spec.part == "unet" else 1

        def step(folder: Path, src=src, spec=spec, batch_max=batch_max) -> None:
            _build_plan(src.files["onnx"], folder / PLAN_NAME, spec.precision, batch_max)

        out.append(ensure_engine(spec, [(f"TensorRT build from {src.folder.name}", step)], {"plan": PLAN_NAME},
                                 engines_dir=engines_dir, force=force, build=build))
    return out


def tensorrt_engines_ready(components, device: torch.device, dtype: torch.dtype, *, width: int, height: int,
                           engines_dir=None) -> bool:
    root = Path(engines_dir) if engines_dir is not None else default_engines_dir()
    return all(check_engine(root / s.folder_name, s)[0] == "ok"
               for s in _specs(components, device, dtype, width, height))


class TrtRunner:
    """One TensorRT engine called with torch CUDA tensors. Output buffers are allocated once per
    batch size and reused: a result is valid until the next call (the pipeline consumes it first)."""

    def __init__(self, plan: Path, device: torch.device) -> None:
        trt = _trt()
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self.logger)
        try:  # the load boundary: a plan from another TensorRT or GPU, a damaged file
            self.engine = self.runtime.deserialize_cuda_engine(plan.read_bytes())
        except Exception as exc:  # noqa: BLE001 - make_backend falls back to torch and says so
            raise EngineLoadError(f"TensorRT could not load {plan} ({type(exc).__name__}: {exc})") from exc
        if self.engine is None:
            raise EngineLoadError(f"TensorRT could not load {plan}; delete its folder and run build-engine again")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.output = next(n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT)
        to_torch = {trt.DataType.FLOAT: torch.float32, trt.DataType.HALF: torch.float16}
        self.dtypes = {n: to_torch[self.engine.get_tensor_dtype(n)] for n in names}
        self.device = device
        self.stream = torch.cuda.Stream(device)
        self._out: dict[tuple, torch.Tensor] = {}

    def __call__(self, *tensors: torch.Tensor) -> torch.Tensor:
        feeds = [t.to(self.device, self.dtypes[n]).contiguous() for n, t in zip(self.inputs, tensors, strict=True)]
        for n, t in zip(self.inputs, feeds, strict=True):
            self.context.set_input_shape(n, tuple(t.shape))
            self.context.set_tensor_address(n, t.data_ptr())
        shape = tuple(self.context.get_tensor_shape(self.output))
        out = self._out.get(shape)
        if out is None:
            out = self._out[shape] = torch.empty(shape, dtype=self.dtypes[self.output], device=self.device)
        self.context.set_tensor_address(self.output, out.data_ptr())
        self.stream.wait_stream(torch.cuda.current_stream(self.device))
        self.context.execute_async_v3(self.stream.cuda_stream)
        torch.cuda.current_stream(self.device).wait_stream(self.stream)
        return out


def tensorrt_backend(components, device: torch.device, dtype: torch.dtype, *, width: int, height: int,
                     engines_dir=None, force: bool = False, **_: object) -> Backend:
    trt = _trt()
    _check_device(device)
    unet_e, dec_e = ensure_tensorrt_engines(components, device, dtype, width=width, height=height,
                                            engines_dir=engines_dir, force=force)
    unet, decode = TrtRunner(unet_e.files["plan"], device), TrtRunner(dec_e.files["plan"], device)
    return Backend(
        name="tensorrt",
        description=(f"TensorRT {trt.__version__} on {torch.cuda.get_device_name(device)} ({unet_e.spec.precision}), "
                     f"engines {unet_e.folder.parent} [least-tested path]"),
        unet=unet, decode=decode, device=device, dtype=dtype)
