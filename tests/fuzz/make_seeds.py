"""Writes the binary seed requests of tests/fuzz/corpus/apply_request/ and
trace_request/: ApplyEditsRequest messages like the ones the tests send
(every op, tensor and scalar operands, ranges, names, a label) and
TraceRequest messages (invokes with id and text rows, every node kind) and
GenerateRequest messages (generate_request/: prompts, sampling, stops,
saves, an intervention with step ranges), ForwardRequest messages
(forward_request/) and the other requests behind a selector byte
(other_requests/). Run with Debian's python and
the generated stubs: PYTHONPATH=build/gen_py /usr/bin/python3 make_seeds.py
"""
import os
import struct

from nnedit.v1 import edits_pb2, inference_pb2 as I, tensor_pb2

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "apply_request")


def f32(values, shape):
    return tensor_pb2.Tensor(dtype=tensor_pb2.DTYPE_FLOAT32, shape=shape,
                             data=struct.pack("<%df" % len(values), *values))


def main():
    os.makedirs(OUT, exist_ok=True)
    reqs = {
        "steer_and_ablate": edits_pb2.ApplyEditsRequest(model="gpt2-script", label="steer", edits=[
            edits_pb2.Edit(site="layers.1.resid_post", op=edits_pb2.EDIT_OP_ADD,
                           tensor=f32([0.5, -1.0, 2.0, 0.0], [4])),
            edits_pb2.Edit(site="layers.0.self_attn.z", op=edits_pb2.EDIT_OP_ZERO,
                           ranges=[edits_pb2.DimRange(dim=-1, start=16, stop=32)]),
            edits_pb2.Edit(site="layers.0.mlp_out", op=edits_pb2.EDIT_OP_SCALE, scalar=0.5),
            edits_pb2.Edit(site="layers.1.resid_post", op=edits_pb2.EDIT_OP_SAVE, name="steered"),
        ]),
        "replace_rows": edits_pb2.ApplyEditsRequest(model="llama-trace", edits=[
            edits_pb2.Edit(site="model.layers.0.mlp", op=edits_pb2.EDIT_OP_REPLACE,
                           tensor=f32([1, 2, 3, 4, 5, 6], [1, 2, 3]),
                           ranges=[edits_pb2.DimRange(dim=0, start=1, stop=2),
                                   edits_pb2.DimRange(dim=1, start=-1, stop=0)]),
        ]),
        "int_operand": edits_pb2.ApplyEditsRequest(model="neox-script", edits=[
            edits_pb2.Edit(site="layers.0.output", op=edits_pb2.EDIT_OP_ADD,
                           tensor=tensor_pb2.Tensor(dtype=tensor_pb2.DTYPE_INT64, shape=[],
                                                    data=struct.pack("<q", 7))),
        ]),
    }
    for name, r in reqs.items():
        with open(os.path.join(OUT, name + ".bin"), "wb") as f:
            f.write(r.SerializeToString())
    out = os.path.join(os.path.dirname(OUT), "trace_request")
    os.makedirs(out, exist_ok=True)
    rows = [I.TokenRow(ids=[1, 2, 3]), I.TokenRow(text="The cat")]
    traces = {
        "every_node": I.TraceRequest(model="gpt2-script", padding=1, top_k=3, logits=1, traces=[
            I.Trace(name="a", invokes=[I.Invoke(input_ids=rows),
                                       I.Invoke(input_ids=[I.TokenRow(ids=[4, 5])],
                                                attention_mask=[I.MaskRow(values=[1, 1])])],
                    nodes=[I.Node(id=1, read=I.ReadNode(site="layers.0.resid_post", invoke=0)),
                           I.Node(id=2, call=I.CallNode(fn="mul", args=[
                               I.Arg(node=1), I.Arg(scalar=2.0)])),
                           I.Node(id=3, write=I.WriteNode(site="layers.0.resid_post", value=2,
                                                          ranges=[edits_pb2.DimRange(
                                                              dim=1, start=-1, stop=0)])),
                           I.Node(id=4, constant=I.ConstNode(tensor=f32([0.1, 0.2], [2]))),
                           I.Node(id=5, constant=I.ConstNode(scalar=0.5)),
                           I.Node(id=6, save=I.SaveNode(value=1, name="r0"))]),
            I.Trace(name="b", invokes=[I.Invoke(input_ids=[I.TokenRow(ids=[9])])],
                    nodes=[I.Node(id=1, ref=I.RefNode(name="r0")),
                           I.Node(id=2, save=I.SaveNode(value=1, name="again"))])]),
    }
    for name, r in traces.items():
        with open(os.path.join(out, name + ".bin"), "wb") as f:
            f.write(r.SerializeToString())
    out = os.path.join(os.path.dirname(OUT), "generate_request")
    os.makedirs(out, exist_ok=True)
    gens = {
        "greedy": I.GenerateRequest(model="gpt2-script", prompts=rows, max_new_tokens=8),
        "everything": I.GenerateRequest(
            model="llama-script", prompts=rows, max_new_tokens=16, ignore_eos=True,
            sampling=I.Sampling(temperature=0.8, top_k=40, top_p=0.9, seed=7, repetition_penalty=1.2),
            stop_token_ids=[2, 999], stop_strings=["\n\n", "The end"], top_alternatives=3,
            edit_set="es-1", save=["layers.1.resid_post"], cache=I.CACHE_MODE_OFF,
            intervention=I.Trace(nodes=[
                I.Node(id=1, constant=I.ConstNode(scalar=0.0)),
                I.Node(id=2, write=I.WriteNode(site="layers.0.self_attn.z", value=1, ranges=[
                    edits_pb2.DimRange(dim=-1, start=16, stop=32)])),
                I.Node(id=3, read=I.ReadNode(site="layers.1.resid_post")),
                I.Node(id=4, save=I.SaveNode(value=3, name="resid"))]),
            steps=[I.NodeSteps(node=2, start=3), I.NodeSteps(node=3, start=2, stop=5),
                   I.NodeSteps(node=4, start=2, stop=5)]),
    }
    for name, r in gens.items():
        with open(os.path.join(out, name + ".bin"), "wb") as f:
            f.write(r.SerializeToString())
    out = os.path.join(os.path.dirname(OUT), "forward_request")
    os.makedirs(out, exist_ok=True)
    fwds = {
        "ids_and_text": I.ForwardRequest(model="gpt2-script", input_ids=rows, padding=1, top_k=5,
                                         logits=2, save=["layers.0.resid_post", "logits"]),
        "masked": I.ForwardRequest(model="llama-trace", input_ids=[I.TokenRow(ids=[0, 0, 7, 8])],
                                   attention_mask=[I.MaskRow(values=[0, 0, 1, 1])], edit_set="es-1"),
    }
    for name, r in fwds.items():
        with open(os.path.join(out, name + ".bin"), "wb") as f:
            f.write(r.SerializeToString())
    # fuzz_other_requests: the first byte picks the message (its driver).
    from nnedit.v1 import admin_pb2, models_pb2
    out = os.path.join(os.path.dirname(OUT), "other_requests")
    os.makedirs(out, exist_ok=True)
    others = {
        "tokenize": (0, I.TokenizeRequest(model="gpt2-script", texts=["héllo wörld", "a\nb"],
                                          pairs=["x", "y"])),
        "detokenize": (1, I.DetokenizeRequest(model="gpt2-script", rows=[I.TokenRow(ids=[1, 2, 3])],
                                              skip_special=True)),
        "load": (3, models_pb2.LoadModelRequest(name="llama-trace", device="cpu", dtype=1)),
        "describe": (5, models_pb2.DescribeModelRequest(name="gpt2-script", module="layers.0")),
        "graph": (6, models_pb2.GraphRequest(model="gpt2-script", module="transformer.h.0.attn")),
        "get": (8, edits_pb2.GetEditSetRequest(id="es-1")),
        "stats": (10, admin_pb2.StatsRequest()),
    }
    for name, (sel, r) in others.items():
        with open(os.path.join(out, name + ".bin"), "wb") as f:
            f.write(bytes([sel]) + r.SerializeToString())


if __name__ == "__main__":
    main()
