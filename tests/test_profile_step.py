"""benchmarks/profile_step.py's reading of compiled HLO and profiler traces, on excerpts of a
real GPU compile (H100, JAX 0.11.2) and hand-made trace events: which op is a matmul, what ran
it, which phase it belongs to, and which events count as device time."""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
import profile_step  # noqa: E402

# Lines of the GPU compile, shortened: a Triton gemm fusion and the computation it calls, a
# cuBLAS call, a multi-output (tuple-shaped) loop fusion, and a reduction fused by XLA.
GPU_HLO = """\
%gemm_fusion_dot.164_computation (parameter_0.109: bf16[8,3264,1536], parameter_1.109: bf16[8,3264,384]) -> bf16[8,1536,384] {
  %parameter_0.109 = bf16[8,3264,1536]{2,1,0} parameter(0), metadata={scheduling_name="parameter_0.109"}
  %transpose.568 = bf16[8,1536,3264]{2,1,0} transpose(%parameter_0.109), dimensions={0,2,1}, metadata={op_name="jit(_chunk)/while/body/eval_jaxpr/vmap(transpose(jvp()))/mul"}
  ROOT %dot.361 = bf16[8,1536,384]{2,1,0} dot(%transpose.568, %parameter_1.109), lhs_batch_dims={0}, metadata={op_name="jit(_chunk)/while/body/eval_jaxpr/vmap(transpose(jvp()))/t"}
}

%fused_select (p0: f32[8,384,1536], p1: f32[8,384,1536]) -> (f32[8,384,1536], f32[8,384,1536]) {
  ROOT %tuple.1 = (f32[8,384,1536]{2,1,0}, f32[8,384,1536]{2,1,0}) tuple(%p0, %p1)
}

ENTRY %main (p: bf16[8,3264,384]) -> bf16[8,1536,384] {
  %custom-call.3 = (bf16[8,3264,384]{2,1,0}, s8[33554432]{0}) custom-call(%bitcast.1135.0, %wrapped_convert.20), custom_call_target="__cublas$lt$matmul", metadata={op_name="jit(_chunk)/while/body/eval_jaxpr/vmap(jvp())/dot_general"}
  %gemm_fusion_dot.164 = bf16[8,1536,384]{2,1,0} fusion(%bitcast.1159.0, %bitcast.1164.0), kind=kCustom, calls=%gemm_fusion_dot.164_computation, backend_config={"fusion_backend_config":{"kind":"__triton_nested_gemm_fusion"}}
  %loop_select_fusion.2 = (f32[8,384,1536]{2,1,0}, /*index=1*/f32[8,384,1536]{2,1,0}) fusion(%a, %b), kind=kLoop, calls=%fused_select, metadata={op_name="jit(_chunk)/while/body/eval_jaxpr/vmap(jit(_where))/select_n"}
  ROOT %reduce.7 = f32[8]{0} reduce(%x, %zero), dimensions={1}, metadata={op_name="jit(_chunk)/while/body/eval_jaxpr/vmap(jvp())/reduce_sum"}
}
"""


def test_gpu_hlo_ops_are_classified_by_opcode_emitter_and_phase():
    ops = profile_step.op_table(GPU_HLO)
    # cuBLAS: a library matmul of the forward pass; its output is a tuple with the workspace.
    shape, opcode, path, how = ops["custom-call.3"]
    assert (opcode, how) == ("dot", "library") and shape.startswith("(bf16[8,3264,384]")
    assert profile_step.phase(path) == "forward"
    # A Triton gemm fusion: the root of the computation it calls is a dot; the call path is the
    # first recorded inside that computation (the fusion itself has none).
    shape, opcode, path, how = ops["gemm_fusion_dot.164"]
    assert (shape, opcode, how) == ("bf16[8,1536,384]{2,1,0}", "dot", "Triton")
    assert profile_step.phase(path) == "backward"
    assert profile_step.kind("gemm_fusion_dot.164", ops["gemm_fusion_dot.164"]) == "matmul, Triton"
    # A multi-output fusion, its tuple shape written with spaces and comments, is still parsed.
    shape, opcode, path, how = ops["loop_select_fusion.2"]
    assert shape.startswith("(f32[8,384,1536]") and how == "XLA"
    assert profile_step.phase(path) == "rest of the step (data, AdamW, NaN freeze)"
    assert profile_step.kind("reduce.7", ops["reduce.7"]) == "reduction, XLA"


def _process(pid, name):
    return {"ph": "M", "pid": pid, "name": "process_name", "args": {"name": name}}


def test_gpu_traces_count_only_device_kernels_named_by_their_hlo_op():
    events = [
        _process(1, "/device:GPU:0"), _process(2, "/host:CPU"),
        {"ph": "X", "pid": 1, "name": "nvjet_hsh_128x64", "dur": 30.0, "args": {"hlo_op": "custom-call.3"}},
        {"ph": "X", "pid": 1, "name": "nvjet_hsh_128x64", "dur": 20.0, "args": {"hlo_op": "custom-call.3"}},
        {"ph": "X", "pid": 1, "name": "loop_select_fusion.2", "dur": 5.0, "args": {}},
        {"ph": "X", "pid": 2, "name": "custom-call.3", "dur": 400.0},  # the host's launch: not device time
        {"ph": "i", "pid": 1, "name": "marker"},
    ]
    assert profile_step.device_op_times(events) == {"custom-call.3": 50.0, "loop_select_fusion.2": 5.0}


def test_cpu_traces_count_op_events_but_not_the_runtime():
    events = [
        _process(7, "/host:CPU"),
        {"ph": "X", "pid": 7, "name": "ynn_fusion.98", "dur": 12.0},
        {"ph": "X", "pid": 7, "name": "ThunkExecutor::Execute", "dur": 99.0},
        {"ph": "X", "pid": 7, "name": "$core.py:123 _pjit_call_impl", "dur": 99.0},
        {"ph": "X", "pid": 7, "name": "ynn_fusion.98", "dur": 3.0},
    ]
    assert profile_step.device_op_times(events) == {"ynn_fusion.98": 15.0}


@pytest.mark.parametrize("line, expected", [
    ('%c = f32[4] custom-call(%a), custom_call_target="__cudnn$fmhaSoftmax"', "library"),
    ('%f = f32[4] fusion(%a), kind=kCustom, backend_config={"fusion_backend_config":{"kind":"__triton"}}', "Triton"),
    ('%f = f32[4] fusion(%a), kind=kLoop, backend_config={"kind":"__ynn_fusion"}', "library"),
    ("%f = f32[4] fusion(%a), kind=kLoop, calls=%fused", "XLA"),
])
def test_the_emitter_of_an_op(line, expected):
    assert profile_step.emitter(line) == expected
